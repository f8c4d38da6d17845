"""The door every data-plane call passes: counts calls in progress and, once closed at shutdown,
refuses new ones with UNAVAILABLE (which clients and load balancers retry elsewhere), so the
server can wait for exactly the calls it accepted and then exit. Before it closes, a SIGTERM
*drains* it: calls still pass, but readiness says the server is going away."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from typing import Concatenate, ParamSpec, Protocol, TypeVar

from swapserve.errors import Unavailable

P = ParamSpec("P")
R = TypeVar("R")


class CallGate:
    """Counts calls in progress; ``close`` refuses new ones. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()  # guards the counts and the refusal below
        self._idle = threading.Condition(self._lock)  # notified when _inflight drops to 0
        self._inflight = 0  # guarded by _lock
        self._refusal = ""  # guarded by _lock: why new calls are refused ("" while open)
        self._waiters = 0  # guarded by _lock: threads in wait_idle (leave notifies only then)
        self._draining = False  # set once, never cleared: a plain read is enough

    def enter(self) -> None:
        """Counts a call in; raises Unavailable once the gate is closed. Every ``enter`` that
        returns must be matched by one ``leave``."""
        with self._lock:
            if self._refusal:
                raise Unavailable(self._refusal)
            self._inflight += 1

    def leave(self) -> None:
        """Counts a call out."""
        with self._lock:
            self._inflight -= 1
            if self._waiters and not self._inflight:
                self._idle.notify_all()

    @contextmanager
    def call(self) -> Iterator[None]:
        """One call's span (``enter`` ... ``leave``)."""
        self.enter()
        try:
            yield
        finally:
            self.leave()

    def drain(self) -> None:
        """Still open, but no longer ready: load balancers move away before ``close``."""
        self._draining = True

    @property
    def draining(self) -> bool:
        """True once ``drain`` was called."""
        return self._draining

    @property
    def closed(self) -> bool:
        """True once new calls are refused."""
        with self._lock:
            return bool(self._refusal)

    @property
    def inflight(self) -> int:
        """Calls in progress now."""
        with self._lock:
            return self._inflight

    def close(self, reason: str) -> None:
        """Refuses every new call with UNAVAILABLE and ``reason``; calls in progress go on."""
        with self._lock:
            self._refusal = reason

    def wait_idle(self, timeout: float) -> bool:
        """Waits until no call is in progress; False if some still are after ``timeout``."""
        deadline = time.monotonic() + timeout
        with self._lock:
            self._waiters += 1
            try:
                while self._inflight:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        return False
                    self._idle.wait(left)
                return True
            finally:
                self._waiters -= 1


class _Gated(Protocol):
    gate: CallGate


S = TypeVar("S", bound=_Gated)


def gated(method: Callable[Concatenate[S, P], R]) -> Callable[Concatenate[S, P], R]:
    """Runs ``method`` as one call through ``self.gate`` (enter/leave written out rather than
    ``with gate.call()``: this runs on every request, and a generator context manager costs
    more than the rest of the gate)."""

    @wraps(method)
    def wrapper(self: S, /, *args: P.args, **kwargs: P.kwargs) -> R:
        gate = self.gate
        gate.enter()
        try:
            return method(self, *args, **kwargs)
        finally:
            gate.leave()

    return wrapper


__all__ = ["CallGate", "gated"]
