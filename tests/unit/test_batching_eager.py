"""The eager batcher, pinned down with a model whose runs wait for the test: no timing asserts,
only what the batcher did (its counters, the rows of each model run, the thread that ran it)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from swapserve.config.model_settings import BatchingSettings
from swapserve.errors import ResourceExhausted, Unavailable
from swapserve.model.batching import Batcher
from swapserve.model.signature import SignatureSpec, TensorSpec

SIG = SignatureSpec(
    "serving_default",
    "tensorflow/serving/predict",
    {"x": TensorSpec("x", "x:0", 1, (-1,))},
    {"y": TensorSpec("y", "y:0", 1, (-1,))},
)


class GatedVersion:
    """Stands in for a LoadedVersion: y = x + 1; each run waits until the gate opens."""

    version = 1

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.entered = threading.Event()
        self.calls: list[tuple[int, int]] = []  # (rows, thread id) per run
        self._lock = threading.Lock()

    def execute(
        self, sig: SignatureSpec, wanted: tuple[str, ...], inputs: Mapping[str, np.ndarray]
    ) -> dict[str, np.ndarray]:
        self.entered.set()
        assert self.gate.wait(30), "the test never opened the gate"
        x = inputs["x"]
        with self._lock:
            self.calls.append((x.shape[0], threading.get_ident()))
        return {"y": x + 1}


def wait_until(predicate: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 30
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.001)


@pytest.fixture
def gated() -> Iterator[tuple[Batcher, GatedVersion]]:
    version = GatedVersion()
    settings = BatchingSettings(
        enabled=True, max_batch_size=8, batch_timeout_micros=60_000_000,
        max_enqueued_batches=2, num_batch_threads=1,
    )  # fmt: skip
    assert settings.mode == "eager"  # the default
    batcher = Batcher(version, settings, "m")  # type: ignore[arg-type]
    yield batcher, version
    version.gate.set()
    batcher.stop()


def test_an_idle_model_runs_a_lone_request_at_once_in_the_callers_thread(
    gated: tuple[Batcher, GatedVersion],
) -> None:
    """The batch timeout is a minute; a lone request does not wait for it, nor for a batch
    thread: it runs as a batch of one in the calling thread."""
    batcher, version = gated
    version.gate.set()
    out = batcher.submit(SIG, ("y",), {"x": np.float32([1, 2])})
    np.testing.assert_array_equal(out["y"], [2, 3])
    assert version.calls == [(2, threading.get_ident())]
    counters = batcher.counters()
    assert (counters.immediate, counters.batches, counters.pending_requests) == (1, 0, 0)


def test_requests_arriving_during_a_run_are_batched_together(
    gated: tuple[Batcher, GatedVersion],
) -> None:
    batcher, version = gated
    with ThreadPoolExecutor(4) as pool:
        first = pool.submit(batcher.submit, SIG, ("y",), {"x": np.float32([0])})
        assert version.entered.wait(30)  # the first runs alone, and blocks
        later = [
            pool.submit(batcher.submit, SIG, ("y",), {"x": np.float32([i])}) for i in (1, 2, 3)
        ]
        wait_until(lambda: batcher.counters().pending_requests == 3, "three queued requests")
        assert version.calls == []  # nothing else ran while the slot was busy
        version.gate.set()
        assert first.result(30)["y"].tolist() == [1.0]
        assert [f.result(30)["y"].tolist() for f in later] == [[2.0], [3.0], [4.0]]
    assert [rows for rows, _ in version.calls] == [1, 3]
    counters = batcher.counters()
    assert (counters.immediate, counters.batches, counters.batched_requests) == (1, 1, 3)


def test_a_queued_batch_runs_when_its_slot_frees_not_at_a_timeout(
    gated: tuple[Batcher, GatedVersion],
) -> None:
    """Eager batches never wait for company: while a slot is busy, a batch reaching
    max_batch_size closes and the next one opens; the queue bound still refuses the rest."""
    batcher, version = gated
    with ThreadPoolExecutor(4) as pool:
        running = pool.submit(batcher.submit, SIG, ("y",), {"x": np.float32([0])})
        assert version.entered.wait(30)
        full = pool.submit(batcher.submit, SIG, ("y",), {"x": np.zeros(8, np.float32)})
        wait_until(lambda: batcher.counters().pending_requests == 1, "a full batch queued")
        half = pool.submit(batcher.submit, SIG, ("y",), {"x": np.zeros(4, np.float32)})
        wait_until(lambda: batcher.counters().pending_requests == 2, "a second batch queued")
        with pytest.raises(ResourceExhausted, match="batch queue is full"):
            batcher.submit(SIG, ("y",), {"x": np.zeros(8, np.float32)})
        version.gate.set()
        for future in (running, full, half):
            future.result(30)
    assert [rows for rows, _ in version.calls] == [1, 8, 4]


def test_stop_runs_what_is_queued_then_refuses(gated: tuple[Batcher, GatedVersion]) -> None:
    batcher, version = gated
    with ThreadPoolExecutor(2) as pool:
        running = pool.submit(batcher.submit, SIG, ("y",), {"x": np.float32([0])})
        assert version.entered.wait(30)
        queued = pool.submit(batcher.submit, SIG, ("y",), {"x": np.float32([5])})
        wait_until(lambda: batcher.counters().pending_requests == 1, "a queued request")
        stopper = threading.Thread(target=batcher.stop)
        stopper.start()
        version.gate.set()
        stopper.join(30)
        assert queued.result(30)["y"].tolist() == [6.0]
        running.result(30)
    with pytest.raises(Unavailable):
        batcher.submit(SIG, ("y",), {"x": np.float32([1])})


def test_timeout_mode_keeps_tf_servings_behaviour() -> None:
    """mode=timeout: a lone request is handed to a batch thread and waits out the timeout (0
    here), never running in the caller's thread."""
    version = GatedVersion()
    version.gate.set()
    settings = BatchingSettings(enabled=True, batch_timeout_micros=0, mode="timeout")
    batcher = Batcher(version, settings, "m")  # type: ignore[arg-type]
    try:
        batcher.submit(SIG, ("y",), {"x": np.float32([1])})
    finally:
        batcher.stop()
    assert version.calls[0][1] != threading.get_ident()
    counters = batcher.counters()
    assert (counters.immediate, counters.batches) == (0, 1)
