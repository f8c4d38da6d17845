"""The HTTP/1.1 port (``--rest-port``) on aiohttp: hosting only. The routes and everything they
do live in ``swapserve.transport.http.api`` and the route modules beside it, which take a plain
request and never see aiohttp.

aiohttp serves on an event loop (uvloop's where installed) of its own thread; the body is read
there, then the API answers on a thread pool, so a model run never blocks the loop. Health
routes are answered on the loop itself.

What a hostile or broken client can hold is bounded here (docs/operations.md, "Limits and
timeouts"): connections (a cap from the fd budget; past it the longest-idle keep-alive
connection goes, else the newcomer gets 503), time (a request head must arrive within the
header timeout, a body may not stall past the body timeout, a connection may sit idle for the
idle timeout) and memory (a body is counted after decompression against the body limit, and
all bodies in progress together against the body memory budget, JSON at what parsing costs).
Every refusal is a ``{"error": ...}`` body with its status; malformed requests are logged one
line per kind per 10 s, never with a header value.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
import threading
from typing import Any

from aiohttp import web

from swapserve.config.model_settings import SettingsError
from swapserve.config.settings import Settings
from swapserve.observability.throttle import Throttle
from swapserve.runtime.heap import Trimmer
from swapserve.runtime.rpc_pool import ElasticPool
from swapserve.transport.http.api import HttpApi, HttpRequest, HttpResponse, error_response
from swapserve.transport.http.bodies import BodyBudget, BodyLimits, Refused, read_body
from swapserve.transport.http.connections import Connection, Connections

log = logging.getLogger(__name__)


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop's loop where it is installed (Linux, macOS), else asyncio's. Measured with the
    same handler (bench scenario ``http_stack``): it takes about 40% off the server CPU per
    request at one client, on aiohttp and on uvicorn alike."""
    try:
        import uvloop  # noqa: PLC0415 (optional: no wheel for Windows)
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def _response(answer: HttpResponse, close: bool = False) -> web.Response:
    response = web.Response(status=answer.status, body=answer.body, headers=answer.headers)
    if close:
        response.force_close()
    return response


class RestServer:
    """The HTTP server: built (socket bound) at once, serving after ``start``.

    Args:
        settings: host, REST port, TLS, limits and timeouts, threads.
        api: what answers every request.
        max_connections: the connection cap (from the fd budget).
        backlog: the accept queue's length (from the fd budget).
        reuse_port: share the port with other processes (``--workers``).

    Raises:
        SettingsError: the address cannot be bound.
    """

    def __init__(
        self,
        settings: Settings,
        api: HttpApi,
        max_connections: int,
        backlog: int,
        reuse_port: bool = False,
    ) -> None:
        self._api = api
        self._settings = settings
        self._max_connections = max_connections
        self._budget = BodyBudget(settings.http_body_memory_bytes)
        self._limits = BodyLimits(settings.max_http_body_bytes, settings.http_body_timeout_seconds)
        self._throttle = Throttle(10.0)
        self._pool = ThreadPool(settings.grpc_threads, settings.active_threads)
        self._sock = _bind(settings.host, settings.rest_port or 0, reuse_port, backlog)
        self.port: int = self._sock.getsockname()[1]
        self._ssl = _ssl_context(settings)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.ServerRunner | None = None
        self._thread: threading.Thread | None = None
        self.connections: Connections | None = None

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
        settings = self._settings
        self.connections = Connections(
            self._handle,
            loop=loop,
            max_connections=self._max_connections,
            header_timeout=settings.http_header_timeout_seconds,
            throttle=self._throttle,
            keepalive_timeout=settings.http_idle_timeout_seconds,
            access_log=None,
        )
        self._runner = web.ServerRunner(self.connections, handle_signals=False)
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
        self._pool.shutdown()

    # ---- requests -----------------------------------------------------------------------------

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        """Reads the body within the limits, then lets the API answer: on the loop for inline
        routes, else on the pool."""
        connection = request.protocol
        if isinstance(connection, Connection):
            connection.request_started()
        taken = 0
        try:
            bound = self._api.resolve(request.method, request.path)
            body, taken = (
                await read_body(request, self._limits, self._budget, self._report)
                if request.body_exists
                else (b"", 0)
            )
            plain = HttpRequest(
                request.method,
                request.path,
                request.headers,  # case-insensitive already: no per-request copy
                body,
                request.remote or "",
            )
            del body
            if bound.inline:
                return _response(bound(plain))
            run = self._pool.run(bound, plain, trim=taken >= TRIM_AFTER_BYTES)
            timeout = self._settings.rest_timeout_seconds
            if timeout is None:
                return _response(await run)
            work = asyncio.ensure_future(run)
            try:
                return _response(await asyncio.wait_for(asyncio.shield(work), timeout))
            except TimeoutError:
                # The call runs on (a TensorFlow run cannot be stopped); its body stays counted.
                held, taken = taken, 0
                work.add_done_callback(lambda _: self._budget.give(held))
                return _response(error_response(504, _TIMED_OUT.format(timeout)))
        except Refused as refusal:
            if refusal.status == 408 and isinstance(connection, Connection):
                connection.skip_lingering()  # a stalled body will not finish: close at once
            return _response(refusal.answer(), close=refusal.close)
        finally:
            self._budget.give(taken)
            if isinstance(connection, Connection):
                connection.request_done()

    def _report(self, kind: str, what: str) -> None:
        if self.connections is not None:
            self.connections.report(kind, what)


_TIMED_OUT = "Deadline exceeded: the call took longer than {:g} s (--rest-timeout-seconds)"
TRIM_AFTER_BYTES = 64 << 20
"""A body whose answer held this much (its budget) gives its memory back to the OS after."""


class ThreadPool:
    """The threads the API answers on (``run`` awaits one call)."""

    def __init__(self, threads: int, active: int) -> None:
        self._executor = ElasticPool(threads, min(active, threads), name="rest")
        self._trim = Trimmer()

    async def run(self, bound: Any, request: HttpRequest, trim: bool = False) -> HttpResponse:
        """``bound(request)`` on a pool thread; with ``trim``, then freed heap goes back to the
        OS (on that thread, after the answer is made)."""
        answer: HttpResponse = await asyncio.get_running_loop().run_in_executor(
            self._executor, self._answer, bound, request, trim
        )
        return answer

    def _answer(self, bound: Any, request: HttpRequest, trim: bool) -> HttpResponse:
        answer: HttpResponse = bound(request)
        if trim:
            del request
            self._trim()
        return answer

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


def _bind(host: str, port: int, reuse_port: bool, backlog: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host.strip("[]"), port))
        sock.listen(backlog)
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
