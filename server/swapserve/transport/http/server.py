"""The HTTP/1.1 port (``--rest-port``) on aiohttp: hosting only. The routes and everything they
do live in ``swapserve.transport.http.api`` and the route modules beside it, which take a plain
request and never see aiohttp.

aiohttp serves on an event loop (uvloop's where installed) of its own thread; the body is read
there (with the size limit), then the API answers on a thread pool, so a model run never blocks
the loop. Health routes are answered on the loop itself.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor

from aiohttp import web

from swapserve.config.model_settings import SettingsError
from swapserve.config.settings import Settings
from swapserve.transport.http.api import HttpApi, HttpRequest, HttpResponse, error_response

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop's loop where it is installed (Linux, macOS), else asyncio's. Measured with the
    same handler (bench scenario ``http_stack``): it takes about 40% off the server CPU per
    request at one client, on aiohttp and on uvicorn alike."""
    try:
        import uvloop  # noqa: PLC0415 (optional: no wheel for Windows)
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def _response(answer: HttpResponse) -> web.Response:
    return web.Response(status=answer.status, body=answer.body, headers=answer.headers)


class RestServer:
    """The HTTP server: built (socket bound) at once, serving after ``start``.

    Args:
        settings: host, REST port, TLS, body size limit, threads.
        api: what answers every request.
        reuse_port: share the port with other processes (``--workers``).

    Raises:
        SettingsError: the address cannot be bound.
    """

    def __init__(self, settings: Settings, api: HttpApi, reuse_port: bool = False) -> None:
        self._api = api
        self._settings = settings
        self._pool = ThreadPoolExecutor(settings.grpc_threads, thread_name_prefix="rest")
        self._sock = _bind(settings.host, settings.rest_port or 0, reuse_port)
        self.port: int = self._sock.getsockname()[1]
        self._ssl = _ssl_context(settings)
        self._app = web.Application(
            client_max_size=settings.max_message_bytes, middlewares=[self._errors]
        )
        self._app.router.add_route("*", "/{path:.*}", self._handle)
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

    # ---- requests -----------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        """Reads the body, then lets the API answer: on the loop for inline routes, else on
        the pool."""
        bound = self._api.resolve(request.method, request.path)
        body = await request.read() if request.body_exists else b""
        plain = HttpRequest(
            request.method,
            request.path,
            request.headers,  # case-insensitive already: no per-request copy
            body,
            request.remote or "",
        )
        if bound.inline:
            return _response(bound(plain))
        answer = await asyncio.get_running_loop().run_in_executor(self._pool, bound, plain)
        return _response(answer)

    @web.middleware
    async def _errors(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """aiohttp's own refusals (413 body too large, malformed requests) as JSON errors."""
        try:
            return await handler(request)
        except web.HTTPRequestEntityTooLarge:
            return _response(
                error_response(
                    413,
                    f"the request body is larger than {self._settings.max_message_bytes} bytes "
                    "(--max-message-bytes)",
                )
            )
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            return _response(
                error_response(exc.status, f"{exc.reason}: {request.method} {request.path}")
            )


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


__all__ = ["RestServer", "new_event_loop"]
