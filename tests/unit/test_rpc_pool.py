"""The RPC thread pool: few calls at once, more when they stall or say they block."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import wait

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from swapserve.runtime import rpc_pool
from swapserve.runtime.rpc_pool import ElasticPool, blocking


class Gauge:
    """Counts calls running at once and remembers the most."""

    def __init__(self) -> None:
        self._lock = threading.Lock()  # guards now and peak
        self.now = self.peak = 0

    def __enter__(self) -> None:
        with self._lock:
            self.now += 1
            self.peak = max(self.peak, self.now)

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self.now -= 1


@pytest.fixture
def no_stalls(monkeypatch: pytest.MonkeyPatch) -> None:
    """A stall never starts a worker: the active bound is exact however slow the machine."""
    monkeypatch.setattr(rpc_pool, "STALL_SECONDS", 3600.0)


@pytest.fixture
def pool() -> Iterator[ElasticPool]:
    made = ElasticPool(limit=8, active=2)
    yield made
    made.shutdown()


def busy(gauge: Gauge, seconds: float = 0.0005) -> Callable[[], int]:
    """A call that holds its thread without the GIL (as a model run does)."""

    def call() -> int:
        with gauge:
            time.sleep(seconds)
        return 1

    return call


def test_runs_calls_and_carries_results_and_errors(pool: ElasticPool) -> None:
    assert pool.submit(lambda a, b=0: a + b, 2, b=3).result(5) == 5

    def fails() -> None:
        raise KeyError("boom")

    with pytest.raises(KeyError, match="boom"):
        pool.submit(fails).result(5)


@pytest.mark.usefixtures("no_stalls")
def test_at_most_active_calls_run_at_once() -> None:
    pool = ElasticPool(limit=16, active=2)
    gauge = Gauge()
    futures = [pool.submit(busy(gauge)) for _ in range(200)]
    wait(futures, timeout=30)
    pool.shutdown()
    assert sum(f.result() for f in futures) == 200
    assert gauge.peak == 2


@pytest.mark.usefixtures("no_stalls")
def test_active_equal_to_limit_is_a_plain_pool() -> None:
    pool = ElasticPool(limit=4, active=4)
    release = threading.Event()
    started = threading.Semaphore(0)

    def held() -> None:
        started.release()
        release.wait(10)

    futures = [pool.submit(held) for _ in range(4)]
    assert all(started.acquire(timeout=5) for _ in range(4))  # all four at once
    release.set()
    wait(futures, timeout=10)
    pool.shutdown()


def test_a_stall_starts_more_workers_up_to_the_limit() -> None:
    """Calls that wait on each other (as requests filling one batch) all get a thread, though
    none of them finishes until the last has started."""
    pool = ElasticPool(limit=6, active=1)
    barrier = threading.Barrier(6, timeout=10)
    futures = [pool.submit(barrier.wait) for _ in range(6)]
    assert {f.result(15) for f in futures} == set(range(6))
    pool.shutdown()


@pytest.mark.usefixtures("no_stalls")
def test_a_blocking_call_lets_another_take_calls() -> None:
    """With one active worker and stalls never detected, the second call could only run
    because the first said it blocks."""
    pool = ElasticPool(limit=2, active=1)
    second_ran = threading.Event()

    def first() -> bool:
        with blocking():
            return second_ran.wait(10)

    a = pool.submit(first)
    b = pool.submit(second_ran.set)
    assert a.result(15) is True
    b.result(5)
    pool.shutdown()


def test_blocking_outside_a_pool_does_nothing() -> None:
    with blocking():
        pass


@pytest.mark.usefixtures("no_stalls")
def test_extra_workers_park_again_after_the_hold(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rpc_pool, "HOLD_SECONDS", 0.05)
    pool = ElasticPool(limit=8, active=2)
    release = threading.Event()

    def held() -> None:
        with blocking():
            release.wait(10)

    holders = [pool.submit(held) for _ in range(6)]  # each steps out: six threads start
    time.sleep(0.2)
    release.set()
    wait(holders, timeout=10)
    time.sleep(0.1)  # past the hold
    gauge = Gauge()
    futures = [pool.submit(busy(gauge)) for _ in range(200)]
    wait(futures, timeout=30)
    pool.shutdown()
    assert gauge.peak <= 2


def test_shutdown_refuses_new_calls_and_cancels_queued_ones() -> None:
    pool = ElasticPool(limit=1, active=1)
    started, release = threading.Event(), threading.Event()

    def held() -> bool:
        started.set()
        return release.wait(10)

    running = pool.submit(held)
    assert started.wait(5)
    queued = pool.submit(lambda: None)
    pool.shutdown(cancel_futures=True)
    with pytest.raises(RuntimeError):
        pool.submit(lambda: None)
    release.set()
    assert running.result(5) is True
    assert queued.cancelled()


def test_active_must_be_between_one_and_the_limit() -> None:
    with pytest.raises(ValueError, match="active"):
        ElasticPool(limit=2, active=3)
    with pytest.raises(ValueError, match="active"):
        ElasticPool(limit=2, active=0)


@settings(max_examples=25, deadline=None)
@given(
    active=st.integers(1, 3),
    calls=st.lists(st.sampled_from(["quick", "blocks", "stalls", "fails"]), max_size=30),
)
def test_every_call_finishes_whatever_the_mix(active: int, calls: list[str]) -> None:
    """Quick calls, calls that say they block, calls that stall without saying so, and
    failing ones, in any order: every one finishes with its own result."""
    pool = ElasticPool(limit=len(calls) + active, active=active)

    def call(kind: str, index: int) -> int:
        if kind == "blocks":
            with blocking():
                time.sleep(0.003)
        elif kind == "stalls":
            time.sleep(0.003)
        elif kind == "fails":
            raise ValueError(index)
        return index

    futures = [pool.submit(call, kind, i) for i, kind in enumerate(calls)]
    _, pending = wait(futures, timeout=30)
    pool.shutdown()
    assert not pending
    for i, (kind, future) in enumerate(zip(calls, futures, strict=True)):
        if kind == "fails":
            assert isinstance(future.exception(), ValueError)
        else:
            assert future.result() == i


def test_active_threads_flag() -> None:
    """``--active-threads`` reaches the settings; 0 is refused with the reason."""
    from swapserve.config.flags import build_parser
    from swapserve.config.from_flags import settings_from_args
    from swapserve.config.model_settings import SettingsError

    parser = build_parser()
    base = ["--model-name", "m", "--export-root", "/x"]
    assert settings_from_args(parser.parse_args(base), parser).active_threads == 2
    given = parser.parse_args([*base, "--active-threads", "16"])
    assert settings_from_args(given, parser).active_threads == 16
    with pytest.raises(SettingsError, match="active threads must be >= 1, got 0"):
        settings_from_args(parser.parse_args([*base, "--active-threads", "0"]), parser)
