"""Reading an HTTP request body within its limits: size after decompression, encodings, a
stall timeout, and a memory budget shared by every body in progress.

A body's cost is what answering it holds in memory: a JSON body is parsed into Python objects
(``JSON_COST`` bytes per byte), binary tensor bytes are used as they are. The budget is taken
as the body arrives (up front when Content-Length says) and given back once the answer is made,
so the memory all bodies hold at once is bounded however many clients send at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web
from aiohttp.http_exceptions import ContentEncodingError
from aiohttp.web_protocol import RequestPayloadError

from swapserve.transport.http.api import HttpResponse, error_response

JSON_COST = 16
"""Bytes of memory a JSON body takes per byte while it is parsed: the body, its text and the
Python objects (measured: ~13x for rows of one float, ~4x for rows of 100, tracemalloc peak;
docs/operations.md)."""

_ENCODINGS = frozenset({"", "identity", "gzip", "x-gzip", "deflate"})
"""Request encodings decompressed (aiohttp does it, as the body is read)."""

_BINARY_TYPES = ("application/octet-stream",)

Report = Callable[[str, str], None]
"""Logs a refusal: (kind, what), throttled."""


@dataclass(frozen=True)
class BodyLimits:
    """The limits of one body."""

    max_bytes: int
    """Largest body, counted after decompression."""
    timeout: float
    """Longest wait for the next byte."""


class Refused(Exception):
    """A request refused before the API saw it (status, message, extra headers, close)."""

    def __init__(
        self, status: int, message: str, headers: dict[str, str] | None = None, close: bool = False
    ) -> None:
        super().__init__(message)
        self.status, self.message = status, message
        self.headers = headers or {}
        self.close = close

    def answer(self) -> HttpResponse:
        """The refusal as an answer: ``{"error": ...}`` with its status and headers."""
        answer = error_response(self.status, self.message)
        return HttpResponse(answer.status, {**answer.headers, **self.headers}, answer.body)


class BodyBudget:
    """The memory all HTTP bodies in progress may take together. Used on the event loop's
    thread only, so it needs no lock."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.held = 0

    def take(self, amount: int) -> int:
        """Takes ``amount``; returns it.

        Raises:
            Refused: 503 with Retry-After when the budget cannot hold it now.
        """
        if self.held + amount > self.capacity:
            raise Refused(
                503,
                "the server is holding as many request bodies as its memory budget allows "
                "(--http-body-memory-bytes); retry shortly",
                {"Retry-After": "1"},
            )
        self.held += amount
        return amount

    def give(self, amount: int) -> None:
        """Gives back what a body took."""
        self.held -= amount

    def need(self, cost: int) -> int:
        """What a body costing ``cost`` must hold: at most the whole budget, so that a lone
        body within the size limit always fits."""
        return min(cost, self.capacity)


class _Cost:
    """The memory a body's first ``n`` bytes take while the request is answered: JSON at
    ``JSON_COST`` per byte, binary tensor bytes (octet-stream, or KServe V2's binary tail after
    its ``Inference-Header-Content-Length`` JSON head) at one."""

    def __init__(self, request: web.BaseRequest) -> None:
        head = request.headers.get("Inference-Header-Content-Length", "")
        if head.isascii() and head.isdigit():
            self._json = int(head)
        elif "Content-Type" in request.headers and request.content_type in _BINARY_TYPES:
            # (aiohttp reports octet-stream when the header is absent: such bodies are JSON)
            self._json = 0
        else:
            self._json = -1  # all of it

    def __call__(self, n: int) -> int:
        if self._json < 0:
            return n * JSON_COST
        json_part = min(n, self._json)
        return json_part * JSON_COST + (n - json_part)


def _too_large(limit: int) -> Refused:
    return Refused(
        413,
        f"the request body is larger than {limit} bytes (--max-http-body-bytes; counted "
        "after decompression)",
        close=True,
    )


async def read_body(
    request: web.BaseRequest, limits: BodyLimits, budget: BodyBudget, report: Report
) -> tuple[bytes, int]:
    """The body, decompressed, and the budget it holds.

    Raises:
        Refused: 413 (too large, before or after decompression), 415 (an encoding we do not
            decompress), 400 (broken gzip/deflate), 408 (the body stalled), 503 (the
            memory budget is full).
    """
    limit = limits.max_bytes
    encoding = request.headers.get("Content-Encoding", "").strip().lower()
    if encoding not in _ENCODINGS:
        raise Refused(
            415,
            f"Content-Encoding {encoding[:40]!r} is not supported (use gzip, deflate or none)",
            close=True,
        )
    declared = request.content_length
    if declared is not None and declared > limit and encoding in ("", "identity"):
        raise _too_large(limit)
    cost = _Cost(request)
    taken = 0
    timeout = limits.timeout
    chunks: list[bytes] = []
    size = 0
    try:
        if declared is not None:
            taken = budget.take(budget.need(cost(min(declared, limit))))
        while True:
            try:
                chunk = await asyncio.wait_for(request.content.readany(), timeout)
            except TimeoutError:
                report("408", "a request body stalled")
                raise Refused(
                    408,
                    f"no byte of the request body arrived for {timeout:g} s "
                    "(--http-body-timeout-seconds)",
                    close=True,
                ) from None
            except RequestPayloadError as err:
                cause = err.__cause__
                if (
                    isinstance(cause, ContentEncodingError)
                    or "content-encoding" in str(err).lower()
                ):
                    message = f"the request body is not valid {encoding} data"
                else:
                    message = "the request body could not be read (it ended early or is malformed)"
                raise Refused(400, message, close=True) from None
            if not chunk:
                break
            size += len(chunk)
            if size > limit:
                raise _too_large(limit)
            if (need := budget.need(cost(size))) > taken:
                taken += budget.take(need - taken)
            chunks.append(chunk)
    except Refused:
        budget.give(taken)
        raise
    return b"".join(chunks), taken
