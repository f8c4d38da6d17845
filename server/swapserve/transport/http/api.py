"""The HTTP API without the HTTP server: a request is (method, path, headers, body, peer) and an
answer is (status, headers, body), so every route is testable without a socket. Only
``swapserve.transport.http.server`` knows aiohttp (TF Serving splits ``http_rest_api_handler``
from ``http_server`` the same way).

``HttpApi`` routes a request to the TF Serving REST routes, the KServe V2 routes or the health
routes; a route that calls the data plane goes through ``HttpApi.call``, HTTP's side of the one
call path (``swapserve.transport.calls``): the access rule, the record, the error mapping.
Errors are ``{"error": "..."}`` with the HTTP status TF Serving uses for the gRPC code, in the
same words as over gRPC. Every answer from a model carries ``X-Model-Version``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from swapserve.observability import calls
from swapserve.observability.calls import CallRecord
from swapserve.transport.access import ADMIN_METHODS, bearer
from swapserve.transport.calls import CallPath, failure, http_status

VERSION_HEADER = "X-Model-Version"
"""The version that answered (TF Serving's REST replies do not say; ours do)."""

JSON = "application/json"

Reply = tuple[bytes, int, dict[str, str]]
"""What an API call's work returns: the body, the answering version (0: none), extra headers."""


@dataclass(frozen=True)
class HttpRequest:
    """One HTTP request as the API sees it."""

    method: str
    path: str
    """The decoded path, without the query."""
    headers: Mapping[str, str] = field(default_factory=dict)
    """Looked up by lower-case name: the server passes aiohttp's case-insensitive headers as
    they are; tests pass a dict with lower-case keys."""
    body: bytes = b""
    peer: str = ""
    """The client's IP address."""


@dataclass(frozen=True)
class HttpResponse:
    """One answer: status, headers, body."""

    status: int
    headers: Mapping[str, str]
    body: bytes


def dumps(payload: Any) -> bytes:
    """Compact JSON (NaN and infinities as the ``NaN``/``Infinity`` literals TF Serving writes)."""
    return json.dumps(payload, separators=(",", ":")).encode("utf-8")


def json_response(status: int, payload: Any) -> HttpResponse:
    """``payload`` as JSON with ``status``."""
    return HttpResponse(status, {"Content-Type": JSON}, dumps(payload))


def error_response(status: int, message: str) -> HttpResponse:
    """``{"error": message}`` with ``status``."""
    return json_response(status, {"error": message})


Handler = Callable[[HttpRequest, Mapping[str, str]], HttpResponse]


@dataclass(frozen=True)
class Route:
    """A path pattern (``{name}`` matches one segment, ``{tail}`` the rest), its methods, and
    whether its handler is so cheap it may run on the server's event loop (health checks, which
    must answer even while every worker thread is busy)."""

    methods: tuple[str, ...]
    pattern: str
    handler: Handler
    inline: bool = False

    def compile(self) -> re.Pattern[str]:
        """The pattern as a regular expression."""
        parts = re.split(r"(\{\w+\})", self.pattern)
        regex = "".join(
            (f"(?P<{p[1:-1]}>.+)" if p == "{tail}" else f"(?P<{p[1:-1]}>[^/]+)")
            if p.startswith("{")
            else re.escape(p)
            for p in parts
        )
        return re.compile(f"^{regex}$")


@dataclass(frozen=True)
class Bound:
    """A request's route and path parameters (or the refusal of a path no route takes)."""

    handler: Handler
    params: Mapping[str, str]
    inline: bool

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.handler(request, self.params)


CORS_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "POST, GET",
    "Access-Control-Allow-Headers": "Content-Type",
}
"""TF Serving's CORS headers (``http_rest_api_util.cc``)."""


def _preflight(request: HttpRequest, params: Mapping[str, str]) -> HttpResponse:
    """A CORS preflight: 200 for an http(s) Origin, else 400 as TF Serving answers it."""
    if re.match(r"https?://", request.headers.get("origin", "")):
        return HttpResponse(200, {}, b"")
    return error_response(400, "Origin header is missing in CORS preflight")


def _with_cors(response: HttpResponse) -> HttpResponse:
    return HttpResponse(response.status, {**response.headers, **CORS_HEADERS}, response.body)


class HttpApi:
    """Every route of the HTTP port.

    Args:
        calls: the one call path (access rule, records, errors).
        routes: the routes, first match wins (each API module's ``routes()``).
    """

    def __init__(self, calls: CallPath, routes: Sequence[Route] = (), cors: bool = False) -> None:
        self._calls = calls
        self._routes = [(r, r.compile()) for r in routes]
        self._cors = cors
        """Answer CORS preflights and add TF Serving's CORS headers to every answer."""

    def add(self, routes: Sequence[Route]) -> None:
        """Adds routes after those there (at build time only)."""
        self._routes += [(r, r.compile()) for r in routes]

    def resolve(self, method: str, path: str) -> Bound:
        """The route that takes ``method path``: 404 when no route's path matches, 405 when
        only other methods do. GET routes answer HEAD too. With CORS, OPTIONS is a preflight
        and every answer carries the CORS headers (as TF Serving's
        ``--rest_api_enable_cors_support``)."""
        bound = self._resolve(method, path)
        if not self._cors:
            return bound
        handler = _preflight if method == "OPTIONS" else bound.handler
        return Bound(lambda r, p: _with_cors(handler(r, p)), bound.params, bound.inline)

    def _resolve(self, method: str, path: str) -> Bound:
        allowed = False
        for route, regex in self._routes:
            match = regex.match(path)
            if match is None:
                continue
            if method in route.methods or (method == "HEAD" and "GET" in route.methods):
                return Bound(route.handler, match.groupdict(), route.inline)
            allowed = True
        status, reason = (405, "Method Not Allowed") if allowed else (404, "Not Found")
        refusal = error_response(status, f"{reason}: {method} {path}")
        return Bound(lambda request, params: refusal, {}, True)

    def handle(self, request: HttpRequest) -> HttpResponse:
        """Answers ``request`` (in the calling thread; a data-plane call may block)."""
        return self.resolve(request.method, request.path)(request)

    def call(
        self,
        request: HttpRequest,
        protocol: str,
        method: str,
        model: str,
        work: Callable[[], Reply],
    ) -> HttpResponse:
        """One API call: the access rule, ``work()``, the error mapping and the record.
        ``method`` names the call as over gRPC (an admin method needs admin rights)."""
        path = self._calls
        record = CallRecord(protocol, method, peer=request.peer, model=model)
        record.metadata = request.headers
        status = 500
        try:
            path.access.check(
                f"{request.method} {request.path}",
                bearer(request.headers.get("authorization")),
                request.peer,
                admin=method in ADMIN_METHODS,
            )
            token = calls.bind(record)
            try:
                body, version, headers = work()
            finally:
                calls.unbind(token)
            status = 200
            record.grpc_code = "OK"
            out = {"Content-Type": JSON, **headers}
            if version:
                out[VERSION_HEADER] = str(version)
            return HttpResponse(200, out, body)
        except MethodNotAllowed as err:
            status = 405
            return error_response(405, str(err))
        except Exception as err:
            code, message = failure(err, f"{request.method} {request.path}", protocol)
            record.grpc_code = code
            status = http_status(code)
            return error_response(status, message)
        finally:
            path.close(record, str(status))


class MethodNotAllowed(Exception):
    """A known path with the wrong HTTP method (405), found inside a call."""
