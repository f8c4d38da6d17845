"""The HTTP/1.1 port (``--rest-port``): TensorFlow Serving's REST API and HTTP health checks,
over the same data plane as gRPC.

aiohttp serves it on an event loop (uvloop's where installed) of its own thread; every
data-plane call (decode, model run, encode) runs on a thread pool, so a model run never blocks
the loop. Handlers only parse the
path, check the token, call the data plane and write JSON (``swapserve.codecs.tfserving_rest``).
Errors are ``{"error": "..."}`` with the HTTP status TF Serving uses for the gRPC code, in the
same words as over gRPC. Every answer from a model carries ``X-Model-Version``.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import prometheus_client
from aiohttp import web

from swapserve.calls import CallRecord, recording
from swapserve.codecs import tfserving_rest as codec
from swapserve.dataplane import DataPlane
from swapserve.errors import InvalidArgument, SwapserveError
from swapserve.settings import Settings, SettingsError
from swapserve.transport.admin import check_admin
from swapserve.transport.auth import bearer, token_refusal
from swapserve.transport.rest_v2 import KServeV2Routes
from swapserve_client.dtypes import TensorError

log = logging.getLogger(__name__)

VERSION_HEADER = "X-Model-Version"
"""The version that answered (TF Serving's REST replies do not say; ours do)."""

HTTP_STATUS = {
    "INVALID_ARGUMENT": 400,
    "FAILED_PRECONDITION": 400,
    "OUT_OF_RANGE": 400,
    "UNAUTHENTICATED": 401,
    "PERMISSION_DENIED": 403,
    "NOT_FOUND": 404,
    "ALREADY_EXISTS": 409,
    "ABORTED": 409,
    "RESOURCE_EXHAUSTED": 429,
    "UNIMPLEMENTED": 501,
    "UNAVAILABLE": 503,
    "DEADLINE_EXCEEDED": 504,
}
"""gRPC code -> HTTP status, as TF Serving's REST server and grpc-gateway map them (else 500)."""

_PROTOCOL = "tfserving_rest"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Reply = tuple[bytes, int, dict[str, str]]
"""What an API call's work returns: the body, the answering version (0: none), extra headers."""


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop's loop where it is installed (Linux, macOS), else asyncio's. Measured with the
    same handler (bench scenario ``http_stack``): it takes about 40% off the server CPU per
    request at one client, on aiohttp and on uvicorn alike."""
    try:
        import uvloop  # noqa: PLC0415 (optional: no wheel for Windows)
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def _json(status: int, payload: Any, version: int = 0) -> web.Response:
    headers = {VERSION_HEADER: str(version)} if version else None
    return web.Response(
        status=status, body=codec.dumps(payload), content_type="application/json", headers=headers
    )


def _error(status: int, message: str) -> web.Response:
    return _json(status, {"error": message})


class RestServer:
    """The HTTP server: built (socket bound) at once, serving after ``start``.

    Args:
        settings: host, REST port, TLS, tokens, body size limit, threads.
        dataplane: what every handler calls.
        reuse_port: share the port with other processes (``--workers``).

    Raises:
        SettingsError: the address cannot be bound.
    """

    def __init__(self, settings: Settings, dataplane: DataPlane, reuse_port: bool = False) -> None:
        self._dataplane = dataplane
        self._settings = settings
        self._pool = ThreadPoolExecutor(settings.grpc_threads, thread_name_prefix="rest")
        self._sock = _bind(settings.host, settings.rest_port or 0, reuse_port)
        self.port: int = self._sock.getsockname()[1]
        self._ssl = _ssl_context(settings)
        self._app = web.Application(
            client_max_size=settings.max_message_bytes, middlewares=[self._errors]
        )
        self._app.router.add_route("GET", "/v1/models/{tail:.+}", self._v1)
        self._app.router.add_route("POST", "/v1/models/{tail:.+}", self._v1)
        self._app.router.add_get("/healthz", self._healthz)
        KServeV2Routes(self, dataplane).add_to(self._app)
        self._app.router.add_get("/readyz", self._readyz)
        if settings.rest_metrics_path:
            self._app.router.add_get(settings.rest_metrics_path, self._metrics)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None

    # ---- life cycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Serves on a thread of its own; returns once the port answers."""
        ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, args=(ready,), name="rest", daemon=True)
        self._thread.start()
        ready.wait(30)

    def _serve(self, ready: threading.Event) -> None:
        loop = self._loop = new_event_loop()
        asyncio.set_event_loop(loop)
        self._runner = web.AppRunner(self._app, access_log=None, handle_signals=False)
        loop.run_until_complete(self._runner.setup())
        site = web.SockSite(self._runner, self._sock, ssl_context=self._ssl)
        loop.run_until_complete(site.start())
        ready.set()
        loop.run_forever()
        loop.run_until_complete(self._runner.cleanup())
        loop.close()

    def stop(self) -> None:
        """Closes the port and its connections (calls in progress have finished: the data
        plane's gate waited for them)."""
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
        self._sock.close()
        self._pool.shutdown(wait=False, cancel_futures=True)

    # ---- handlers -----------------------------------------------------------------------------

    @web.middleware
    async def _errors(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """aiohttp's own refusals (404 route, 405, 413 body too large) as JSON errors."""
        try:
            return await handler(request)
        except web.HTTPRequestEntityTooLarge:
            return _error(
                413,
                f"the request body is larger than {self._settings.max_message_bytes} bytes "
                "(--max-message-bytes)",
            )
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            return _error(exc.status, f"{exc.reason}: {request.method} {request.path}")

    async def _healthz(self, request: web.Request) -> web.Response:
        return _json(200, {"status": "live"})

    async def _metrics(self, request: web.Request) -> web.Response:
        """Prometheus text, as ``--metrics-port`` serves it (TF Serving's monitoring path)."""
        body = prometheus_client.generate_latest(self._dataplane.metrics.registry)
        return web.Response(
            body=body, headers={"Content-Type": prometheus_client.CONTENT_TYPE_LATEST}
        )

    async def _readyz(self, request: web.Request) -> web.Response:
        reason = self._dataplane.not_ready_reason()
        return _json(200, {"status": "ready"}) if not reason else _error(503, reason)

    async def _v1(self, request: web.Request) -> web.Response:
        """Every ``/v1/models/...`` call: status, metadata, predict, classify, regress."""
        tail = request.match_info["tail"]
        last = tail.rsplit("/", 1)[-1]
        verb = last.rpartition(":")[2] if ":" in last else "metadata" if last == "metadata" else ""
        body = await request.read() if request.method == "POST" else b""
        return await self.run(
            request,
            "tfserving_rest",
            verb if verb in ("metadata", *codec.VERBS) else "status",
            tail.split("/", 1)[0].split(":", 1)[0],
            lambda: self._v1_call(request.method, tail, body),
        )

    def _v1_call(self, method: str, tail: str, body: bytes) -> Reply:
        route = codec.parse_path(tail)
        if method == "GET" and route.verb in ("", "metadata"):
            return self._get(route)
        if method == "POST" and route.verb in codec.VERBS:
            return self._post(route, body)
        raise _MethodNotAllowed(f"{method} is not allowed on /v1/models/{tail}")

    async def run(
        self,
        request: web.Request,
        protocol: str,
        method: str,
        model: str,
        work: Callable[[], Reply],
        *,
        admin: bool = False,
    ) -> web.Response:
        """One API call: the token check, ``work()`` on the pool (data-plane calls block), the
        error mapping and the metrics. ``work`` returns (body, model version, extra headers)."""
        record = CallRecord(protocol, method, peer=request.remote or "", model=model)
        status = 500

        def recorded() -> Reply:
            with recording(record):
                return work()

        try:
            self._authorize(request, admin)
            body, version, headers = await asyncio.get_running_loop().run_in_executor(
                self._pool, recorded
            )
            if version:
                headers = {**headers, VERSION_HEADER: str(version)}
            status = 200
            return web.Response(
                status=200,
                body=body,
                headers={"Content-Type": "application/json", **headers},
            )
        except _MethodNotAllowed as err:
            status = 405
            return _error(405, str(err))
        except SwapserveError as err:
            status = HTTP_STATUS.get(err.status, 500)
            return _error(status, err.message)
        except TensorError as err:
            status = 400
            return _error(400, str(err))
        except Exception:
            log.exception("unexpected error in %s %s", request.method, request.path)
            return _error(500, "internal server error (see the server log)")
        finally:
            record.finish(str(status))
            self._dataplane.observe(record)

    def _authorize(self, request: web.Request, admin: bool) -> None:
        refusal = token_refusal(
            f"{request.method} {request.path}",
            bearer(request.headers.get("Authorization")),
            admin=admin,
            admin_token=self._settings.admin_token,
            data_token=self._settings.token,
        )
        if refusal is not None:
            code, message = refusal
            raise _Refused(HTTP_STATUS[code.name], message)
        if admin and self._settings.admin_token is None:
            peer = request.remote or ""
            check_admin(
                f"{request.method} {request.path}",
                f"ipv6:[{peer}]:0" if ":" in peer else f"ipv4:{peer}:0",
                self._settings.allow_remote_admin,
            )

    # ---- on the pool --------------------------------------------------------------------------

    def _get(self, route: codec.Route) -> Reply:
        dp = self._dataplane
        if route.verb == "metadata":
            meta = dp.metadata(route.model, route.version, route.label)
            payload = codec.metadata_json(route.model, meta.version, meta.signature_defs)
            return codec.dumps(payload), meta.version, {}
        versions = dp.version_status(route.model, route.version, route.label)
        return codec.dumps(codec.status_json(versions)), 0, {}

    def _post(self, route: codec.Route, raw: bytes) -> Reply:
        dp = self._dataplane
        body = codec.parse_body(raw)
        signature = body.get("signature_name", "")
        if not isinstance(signature, str):
            raise InvalidArgument("'signature_name' must be a string")
        if route.verb == "predict":
            _, sig = dp.signature(route.model, signature, route.version, route.label)
            inputs, rows = codec.decode_predict(body, sig)
            result = dp.predict(
                route.model, signature, inputs, version=route.version, label=route.label
            )
            return codec.dumps(codec.encode_predict(result.outputs, rows)), result.version, {}
        examples = codec.serialize_examples(body)
        result = dp.predict_examples(
            route.model, signature, examples, route.verb, version=route.version, label=route.label
        )
        encode = codec.classify_result if route.verb == "classify" else codec.regress_result
        return codec.dumps(encode(result.outputs, len(examples))), result.version, {}


class _MethodNotAllowed(Exception):
    """A known path with the wrong HTTP method (405)."""


class _Refused(SwapserveError):
    """A token check's refusal, with its HTTP status."""

    def __init__(self, http_status: int, message: str) -> None:
        super().__init__(message)
        self.status = {401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED"}[http_status]


def _bind(host: str, port: int, reuse_port: bool) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host.strip("[]"), port))
        sock.listen(1024)
    except OSError as err:
        sock.close()
        raise SettingsError(f"cannot listen on {host}:{port} (--rest-port): {err}") from None
    sock.setblocking(False)
    return sock


def _ssl_context(settings: Settings) -> ssl.SSLContext | None:
    if settings.tls_cert is None or settings.tls_key is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(settings.tls_cert, settings.tls_key)
    if settings.tls_client_ca is not None:
        context.load_verify_locations(settings.tls_client_ca)
        context.verify_mode = ssl.CERT_REQUIRED
    return context


__all__ = ["HTTP_STATUS", "VERSION_HEADER", "RestServer"]
