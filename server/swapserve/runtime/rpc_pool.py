"""The threads RPCs and HTTP calls run on: few at once, more only while those are stuck.

A plain thread pool of 16 wakes a parked thread for every call, and under load all 16 are
runnable and take turns at the GIL: on 2 cores, 23 context switches and ~590 µs of server CPU
per gRPC Predict of a tiny model at 16 callers, against 8 switches and ~340 µs with 2 active
threads (``bench/profile_grpc.py``; docs/performance.md, "RPC threads"). Two threads overlap
one call's wait (for its request message, a model run) with another's Python; more only queue
at the GIL. But a thread stuck in a long wait -- a batch filling, a slow model, a Reload --
must not hold up the calls behind it.

So ``ElasticPool`` keeps ``active`` workers taking calls, starts another (up to ``limit``) when
calls are queued and none has finished for ``STALL_SECONDS``, and lets the extra ones park
again once ``HOLD_SECONDS`` pass without a stall. Code that knows it is about to wait long says
so with ``blocking()``; its thread stops counting as running for that time.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, Future
from contextlib import contextmanager
from typing import Any, TypeVar

STALL_SECONDS = 0.002
"""Calls queued and none finished for this long: start one more worker (a slow model, a batch
that is filling). A tiny model finishes calls every few hundred µs under load, so it never
stalls; a model that runs for milliseconds grows the pool as a plain pool would be."""

HOLD_SECONDS = 0.2
"""Workers started by a stall stay taking calls this long after the last stall."""

_T = TypeVar("_T")
_Task = tuple[Future[Any], Callable[..., Any], tuple[Any, ...], dict[str, Any]]
_current = threading.local()  # .pool: the ElasticPool whose worker this thread is


class ElasticPool(Executor):
    """An ``Executor`` running at most ``active`` calls at once unless they stall (up to
    ``limit`` threads); ``active == limit`` makes it a plain pool."""

    def __init__(self, limit: int, active: int, name: str = "rpc") -> None:
        if not 1 <= active <= limit:
            raise ValueError(f"need 1 <= active <= limit, got active={active} limit={limit}")
        self.limit, self.active, self._name = limit, active, name
        # Guards every field below; ``_wanted`` (the watcher's wake-up) shares it.
        self._lock = threading.Lock()
        self._wanted = threading.Condition(self._lock)  # guards the same; wakes the watcher
        self._tasks: deque[_Task] = deque()
        self._parked: list[threading.Lock] = []  # parked workers' gates, newest last
        self._threads = 0  # workers started and not exited
        self._running = 0  # workers not parked and not inside blocking()
        self._finished = 0  # calls finished (the watcher's progress count)
        self._grown = float("-inf")  # monotonic time of the last stall
        self._closed = False
        self._watch_idle = False  # the watcher waits for calls to queue (not for a stall)
        if active < limit:
            threading.Thread(target=self._watch, name=f"{name}-watch", daemon=True).start()

    def submit(self, fn: Callable[..., _T], /, *args: Any, **kwargs: Any) -> Future[_T]:
        future: Future[_T] = Future()
        with self._lock:
            if self._closed:
                raise RuntimeError("cannot schedule new calls after shutdown")
            self._tasks.append((future, fn, args, kwargs))
            if self._running < self.active:
                self._start_one()
            elif self._watch_idle:
                self._watch_idle = False
                self._wanted.notify()  # calls now wait behind busy workers: watch for a stall
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Queued calls still run (or are cancelled); parked workers exit."""
        with self._lock:
            self._closed = True
            if cancel_futures:
                while self._tasks:
                    self._tasks.popleft()[0].cancel()
            while self._parked:
                self._running += 1
                self._parked.pop().release()
            self._wanted.notify()

    def _start_one(self) -> None:
        """One more worker taking calls: the newest parked one (its cache is warmest), else a
        new thread. Holds ``_lock``."""
        if self._parked:
            self._running += 1
            self._parked.pop().release()
        elif self._threads < self.limit:
            self._running += 1
            self._threads += 1
            threading.Thread(
                target=self._work, name=f"{self._name}-{self._threads}", daemon=True
            ).start()

    def _work(self) -> None:
        _current.pool = self
        gate = threading.Lock()
        gate.acquire()
        done = False
        while True:
            with self._lock:
                if done:
                    self._finished += 1
                if self._tasks and (
                    self._running <= self.active or time.monotonic() - self._grown < HOLD_SECONDS
                ):
                    future, fn, args, kwargs = self._tasks.popleft()
                elif self._closed:
                    self._running -= 1
                    self._threads -= 1
                    return
                else:
                    self._running -= 1
                    self._parked.append(gate)
                    future = None
            if future is None:
                gate.acquire()  # released by _start_one (which counted this worker running)
                done = False
                continue
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(fn(*args, **kwargs))
                except BaseException as err:  # the future carries it to the caller
                    future.set_exception(err)
            del future, fn, args, kwargs
            done = True

    def _watch(self) -> None:
        """Starts a worker when calls wait and none finished for ``STALL_SECONDS``."""
        with self._lock:
            while not self._closed:
                if not self._tasks:
                    self._watch_idle = True
                    self._wanted.wait()
                    continue
                seen = self._finished
                self._wanted.wait(STALL_SECONDS)
                if self._tasks and self._finished == seen and self._threads_free():
                    self._grown = time.monotonic()
                    self._start_one()

    def _threads_free(self) -> bool:
        return bool(self._parked) or self._threads < self.limit

    def _enter_blocking(self) -> None:
        with self._lock:
            self._running -= 1
            if self._tasks and self._running < self.active:
                self._start_one()

    def _leave_blocking(self) -> None:
        with self._lock:
            self._running += 1


@contextmanager
def blocking() -> Iterator[None]:
    """Marks a long wait (a batch to fill, an admin call's load) on a pool worker: the pool
    lets another worker take calls meanwhile. Anywhere else it does nothing."""
    pool: ElasticPool | None = getattr(_current, "pool", None)
    if pool is None:
        yield
        return
    pool._enter_blocking()
    try:
        yield
    finally:
        pool._leave_blocking()
