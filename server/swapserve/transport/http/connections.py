"""The HTTP port's connections: aiohttp's connection with a header timeout, JSON answers for
aiohttp's own refusals, and a cap on how many are open.

aiohttp has an idle (keep-alive) timeout but no header timeout: a client sending one header byte
every few seconds would hold its socket for as long as the idle timeout allows, and ~1,000 such
sockets fill a default fd table. ``Connection`` starts a timer at a head's first byte; the cap
(``Connections``) closes the longest-idle keep-alive connection to make room, else refuses the
newcomer with 503 -- a full table of silent sockets cannot happen.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestHandler

from swapserve.observability.throttle import Throttle
from swapserve.transport.http.api import dumps

log = logging.getLogger(__name__)


def raw_error(status: int, reason: str, message: str, extra: str = "") -> bytes:
    """A whole HTTP/1.1 error answer that closes the connection, for refusals made before
    aiohttp has a request to answer (a connection over the cap, a head that timed out)."""
    body = dumps({"error": message})
    return (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n{extra}\r\n"
    ).encode("ascii") + body


class Connection(RequestHandler):
    """aiohttp's connection, plus the header timeout, idleness (for the cap) and JSON errors
    for aiohttp's own refusals.

    It reads aiohttp's private ``_messages`` (parsed heads waiting), ``_manager`` and
    ``_force_close`` and sets ``_lingering_time``: aiohttp is pinned, and
    tests/e2e/test_http_limits.py fails if their meaning changes."""

    def __init__(self, manager: Connections, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._limits = manager
        self.in_request = False
        """A request of this connection is being answered."""
        self._head_timer: asyncio.TimerHandle | None = None
        self.idle_since = manager.loop.time()

    @property
    def idle(self) -> bool:
        """No request in progress and no request head arriving: closing it loses nothing."""
        return not self.in_request and self._head_timer is None and not self._messages

    async def start(self) -> None:
        # A connection refused in connection_made may be gone before this task first runs.
        if self._manager is None or self._force_close:
            return
        await super().start()

    def data_received(self, data: bytes) -> None:
        if data and not self.in_request and self._head_timer is None and not self._messages:
            self._head_timer = self._limits.loop.call_later(
                self._limits.header_timeout, self._head_timed_out
            )
        super().data_received(data)
        if self._head_timer is not None and self._messages:  # a whole head arrived
            self._head_timer.cancel()
            self._head_timer = None

    def request_started(self) -> None:
        """The server's handler took a request of this connection: its head is complete."""
        self.in_request = True
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def request_done(self) -> None:
        """The request was answered: the connection is idle from now."""
        self.in_request = False
        self.idle_since = self._limits.loop.time()

    def skip_lingering(self) -> None:
        """Close right after the answer instead of draining the rest of the body (aiohttp
        drains for up to 10 s so a client still sending sees the answer, not a reset)."""
        self._lingering_time = 0.0

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.in_request or self._messages or self.transport is None:
            return
        self._limits.report("408", "a request head did not arrive within the header timeout")
        self.refuse(
            raw_error(
                408,
                "Request Timeout",
                "the request head did not arrive within "
                f"{self._limits.header_timeout:g} s (--http-header-timeout-seconds)",
            )
        )

    def refuse(self, answer: bytes) -> None:
        """Writes ``answer`` and closes (the transport flushes it first)."""
        if self.transport is not None:
            self.transport.write(answer)
        self.force_close()

    def connection_lost(self, exc: BaseException | None) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        super().connection_lost(exc)

    def log_exception(self, *args: Any, **kwargs: Any) -> None:
        """aiohttp's own error logs (a body that breaks while it is drained after an answer, a
        connection failing mid-request): one line per kind per 10 s, never the traceback or
        the message, which may quote the request."""
        error = kwargs.get("exc_info")
        kind = type(error).__name__ if isinstance(error, BaseException) else "error"
        self._limits.report(f"error {kind}", f"HTTP connection error ({kind})")

    def handle_error(
        self,
        request: Any,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        """aiohttp's refusal of a malformed request (bad request line, header or length; too
        long a line): a JSON error with its status, one log line per kind per 10 s naming the
        kind only -- the exception's text may quote a header, a token included."""
        kind = type(exc).__name__ if exc is not None else "error"
        self._limits.report(str(status), f"malformed HTTP request ({kind})")
        if isinstance(exc, HttpProcessingError) and exc.code:
            status = exc.code
        text = "malformed HTTP request" if status < 500 else "internal error"
        response = web.Response(
            status=status,
            body=dumps({"error": f"{text} ({kind})"}),
            content_type="application/json",
        )
        response.force_close()
        return response


class Connections(web.Server):
    """aiohttp's server, making ``Connection``s and keeping their number under the cap."""

    def __init__(
        self,
        handler: Any,
        *,
        loop: asyncio.AbstractEventLoop,
        max_connections: int,
        header_timeout: float,
        throttle: Throttle,
        **kwargs: Any,
    ) -> None:
        super().__init__(handler, loop=loop, **kwargs)
        self.loop = loop
        self.max_connections = max_connections
        self.header_timeout = header_timeout
        self._throttle = throttle
        self.refused_connections = 0
        self.closed_idle = 0

    def __call__(self) -> Connection:
        return Connection(self, loop=self.loop, **self._kwargs)

    def connection_made(self, handler: RequestHandler, transport: asyncio.Transport) -> None:
        super().connection_made(handler, transport)
        if len(self._connections) <= self.max_connections:
            return
        idle = [c for c in self._connections if isinstance(c, Connection) and c.idle]
        idle = [c for c in idle if c is not handler]
        if idle:
            oldest = min(idle, key=lambda c: c.idle_since)
            oldest.force_close()
            self.closed_idle += 1
            return
        self.refused_connections += 1
        self.report("503", f"more than {self.max_connections} HTTP connections")
        assert isinstance(handler, Connection)
        handler.refuse(
            raw_error(
                503,
                "Service Unavailable",
                f"the server has {self.max_connections} HTTP connections open "
                "(--max-http-connections); retry shortly",
                "Retry-After: 1\r\n",
            )
        )

    def report(self, kind: str, what: str) -> None:
        """One warning line per kind of refusal per interval, with the count left out."""
        suppressed = self._throttle.allow(kind)
        if suppressed is not None:
            more = f" ({suppressed} more since the last report)" if suppressed else ""
            log.warning("HTTP: %s%s", what, more)
