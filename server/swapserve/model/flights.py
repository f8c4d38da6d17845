"""Group commit for admin calls: concurrent calls with the same key share one run.

A storm of Reloads (every pipeline step, every replica of a job) must not queue N rescans behind
one lock while holding N server threads. Callers with the same key join the *flight* that has
not started yet; its leader runs it once and every member gets the answer. A flight closes when
its leader takes the work lock, so a member's run always starts after the member called: an
export made just before calling is seen. A flight that had to wait for the lock (a storm, not a
lone call) starts at least ``gap`` seconds after the previous one ended, so a storm costs at most
about 1/gap runs per second while a lone call never waits.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

from swapserve.errors import SwapserveError, Unavailable

T = TypeVar("T")


class _Flight(Generic[T]):
    """One run and the callers waiting for it."""

    def __init__(self) -> None:
        self._finished = threading.Event()
        self._result: T | None = None  # set once, before _finished
        self._error: SwapserveError | None = None  # set once, before _finished

    def finish(self, result: T | None, error: SwapserveError | None) -> None:
        self._result, self._error = result, error
        self._finished.set()

    def wait(self) -> T:
        """The leader's answer; its error is raised afresh in this caller's thread."""
        self._finished.wait()
        if self._error is not None:
            raise type(self._error)(*self._error.args)
        assert self._result is not None
        return self._result


class Flights(Generic[T]):
    """Coalesces calls by key; the run happens under ``lock``.

    Args:
        lock: the lock every run takes (the manager's load lock).
        gap: minimum seconds between the end of one run and the start of the next.
        what: names the work in the error members get if the leader fails unexpectedly.
    """

    def __init__(self, lock: threading.Lock, gap: float, what: str) -> None:
        self._lock = lock
        self._gap = gap
        self._what = what
        self._pending_lock = threading.Lock()  # guards _pending
        self._pending: dict[Hashable, _Flight[T]] = {}  # per key: the flight not started yet
        self._last_end = 0.0  # guarded by lock: when the last run ended (monotonic)

    def run(self, key: Hashable, work: Callable[[], T]) -> T:
        """``work()`` under the lock, shared with every concurrent caller of ``key``."""
        with self._pending_lock:
            flight = self._pending.get(key)
            leader = flight is None
            if flight is None:
                flight = self._pending[key] = _Flight()
        if not leader:
            return flight.wait()
        result: T | None = None
        error: SwapserveError | None = None
        try:
            if not self._lock.acquire(blocking=False):
                self._lock.acquire()
                # Contended: a storm. Let it gather members rather than rescan back to back.
                time.sleep(max(0.0, self._last_end + self._gap - time.monotonic()))
            try:
                with self._pending_lock:
                    del self._pending[key]  # closed: later callers start the next flight
                result = work()
            finally:
                self._last_end = time.monotonic()
                self._lock.release()
        except SwapserveError as err:
            error = err
            raise
        except BaseException:
            error = Unavailable(f"{self._what} failed unexpectedly; see the server log")
            raise
        finally:
            with self._pending_lock:
                if self._pending.get(key) is flight:  # failed before it closed: reopen the key
                    del self._pending[key]
            flight.finish(result, error)
        return result
