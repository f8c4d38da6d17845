"""``LiveSample``: recent live requests of one model, kept in memory for the gates.

A gate that only ran zeros would pass an export that is NaN on half of the real inputs; the
sample is what the candidate must answer before it serves. It holds requests that succeeded,
copied (a decoded request may be a view of the wire buffer), bounded in count and in bytes, the
oldest dropped first. Every request is kept while there is room, then 1 in ``EVERY`` (the copy
is the request path's only cost, ~2 µs for a small tensor).
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

EVERY = 8


@dataclass(frozen=True)
class SampledRequest:
    """One request as it was answered."""

    signature: str
    inputs: dict[str, np.ndarray]
    output_filter: tuple[str, ...] = ()
    nbytes: int = 0


def _nbytes(array: np.ndarray) -> int:
    if array.dtype.kind == "O":
        return int(array.size) * 8 + sum(len(x) for x in array.flat if isinstance(x, bytes))
    return int(array.nbytes)


class LiveSample:
    """Thread-safe; ``offer`` is called on request threads.

    Args:
        max_requests: the most requests kept.
        max_bytes: the most input bytes kept; a request larger than this is never kept.
    """

    def __init__(self, max_requests: int, max_bytes: int) -> None:
        self._max_requests = max_requests
        self._max_bytes = max_bytes
        self._seen = 0  # unguarded: a lost increment only shifts which request is sampled
        self._lock = threading.Lock()  # guards _kept and _bytes
        self._kept: deque[SampledRequest] = deque()  # guarded by _lock, oldest first
        self._bytes = 0  # guarded by _lock

    def resize(self, max_requests: int, max_bytes: int) -> None:
        """New bounds (a config reload); the oldest requests go until they fit."""
        with self._lock:
            self._max_requests, self._max_bytes = max_requests, max_bytes
            self._trim_locked()

    def offer(
        self, signature: str, inputs: Mapping[str, np.ndarray], output_filter: Sequence[str] = ()
    ) -> None:
        """A request that was just answered; kept if the sampling rule picks it."""
        self._seen += 1
        if len(self._kept) >= self._max_requests and self._seen % EVERY:
            return
        size = sum(_nbytes(a) for a in inputs.values())
        if size > self._max_bytes:
            return
        copied = {name: np.array(a, copy=True) for name, a in inputs.items()}
        request = SampledRequest(signature, copied, tuple(output_filter), size)
        with self._lock:
            self._kept.append(request)
            self._bytes += size
            self._trim_locked()

    def _trim_locked(self) -> None:
        while self._kept and (
            len(self._kept) > self._max_requests or self._bytes > self._max_bytes
        ):
            self._bytes -= self._kept.popleft().nbytes

    def requests(self) -> list[SampledRequest]:
        """The kept requests, oldest first (a copy of the list; the arrays are never written)."""
        with self._lock:
            return list(self._kept)

    @property
    def nbytes(self) -> int:
        """Input bytes held now."""
        with self._lock:
            return self._bytes
