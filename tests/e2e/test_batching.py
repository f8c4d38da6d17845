"""Dynamic batching: correctness per caller, padding, limits, overload, and hot swap."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import numpy as np
import pytest
import tensorflow as tf
import tritonclient.grpc as triton

from helpers import (
    HALF_PLUS_TWO,
    HALF_PLUS_TWO_TF2,
    copy_version,
    estimator_version,
    serving,
    wait_for,
)
from swapserve.config.model_settings import BatchingSettings
from swapserve.errors import InvalidArgument, ResourceExhausted
from swapserve.export import export_model
from swapserve.model.batching import Batcher
from swapserve.model.signature import SignatureSpec, TensorSpec
from swapserve_client import Client, SwapserveError


class BatchSpy(tf.Module):
    """y = 2x, plus `n`: the number of rows of the model run each row was part of."""

    @tf.function(input_signature=[tf.TensorSpec([None, 3], tf.float32, name="x")])
    def serve(self, x: tf.Tensor) -> dict[str, tf.Tensor]:
        rows = tf.shape(x)[0]
        return {"y": x * 2, "n": tf.fill([rows], rows)}


@pytest.fixture(scope="module")
def spy_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("spy")
    module = BatchSpy()
    export_model(module, root, signatures={"serving_default": module.serve}, version=1)
    return root


def batching(**kwargs: object) -> BatchingSettings:
    return BatchingSettings(enabled=True, **kwargs)  # type: ignore[arg-type]


def test_concurrent_requests_share_runs_and_get_their_rows(spy_root: Path) -> None:
    # Timeout mode: a 50 ms window gathers the callers (the spy model runs in microseconds,
    # so eager batches form only under sustained load; tests below pin eager down exactly).
    settings = batching(
        max_batch_size=32, batch_timeout_micros=50_000, num_batch_threads=1, mode="timeout"
    )
    with serving(spy_root, batching=settings) as server:
        target = f"127.0.0.1:{server.port}"
        barrier = threading.Barrier(16)

        def call(i: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
            rows = 1 + i % 3
            x = np.arange(rows * 3, dtype=np.float32).reshape(rows, 3) + 100 * i
            with Client(target) as client:
                barrier.wait()
                return x, client.predict("m", {"x": x})

        with ThreadPoolExecutor(16) as pool:
            results = list(pool.map(call, range(16)))
    for x, out in results:
        np.testing.assert_array_equal(out["y"], 2 * x)  # exactly its own rows
        assert out["n"].shape == (x.shape[0],)
    assert max(int(out["n"][0]) for _, out in results) > 3  # some runs held several requests


def test_padding_to_allowed_batch_sizes(spy_root: Path) -> None:
    settings = batching(max_batch_size=8, allowed_batch_sizes=(4, 8), batch_timeout_micros=0)
    with serving(spy_root, batching=settings) as server, Client(f"127.0.0.1:{server.port}") as c:
        for rows, padded in ((1, 4), (4, 4), (5, 8)):
            out = c.predict("m", {"x": np.ones([rows, 3], np.float32)})
            assert out["y"].shape == (rows, 3)
            assert set(out["n"].tolist()) == {padded}
        with pytest.raises(SwapserveError) as exc:
            c.predict("m", {"x": np.ones([9, 3], np.float32)})
        assert exc.value.code == grpc.StatusCode.INVALID_ARGUMENT
        assert exc.value.message == (
            "request has 9 rows but this model batches at most 8 (max_batch_size); split it into "
            "smaller requests"
        )
        # Validation still happens per request, before batching.
        with pytest.raises(SwapserveError) as exc:
            c.predict("m", {"x": np.ones([2, 4], np.float32)})
        assert "dimension 1 is 4 but 3 is expected" in exc.value.message


def test_v2_and_unbatchable_signatures(spy_root: Path, tmp_path: Path) -> None:
    with serving(spy_root, batching=batching(batch_timeout_micros=0)) as server:
        client = triton.InferenceServerClient(f"127.0.0.1:{server.port}")
        inp = triton.InferInput("x", [2, 3], "FP32")
        inp.set_data_from_numpy(np.ones([2, 3], np.float32))
        np.testing.assert_array_equal(client.infer("m", [inp]).as_numpy("n"), [2, 2])
        client.close()
    # TF2 half_plus_two takes shape [1] (no batch dimension): it runs unbatched.
    copy_version(HALF_PLUS_TWO_TF2, tmp_path, 1)
    with serving(tmp_path, batching=batching()) as server, Client(f"127.0.0.1:{server.port}") as c:
        np.testing.assert_allclose(c.predict("m", {"x": np.float32([4])})["y"], [4.0])


def test_left_out_dimensions_batch_apart(tmp_path: Path) -> None:
    """Shape [n] requests for half_plus_two's [-1, 1] input (TF Serving's REST example) batch
    only with their own kind, so [n] and [n, 1] callers arriving together each get their shape."""
    copy_version(HALF_PLUS_TWO, tmp_path, 1)
    settings = batching(max_batch_size=32, batch_timeout_micros=20_000, num_batch_threads=1)
    with serving(tmp_path, batching=settings) as server:
        target = f"127.0.0.1:{server.port}"
        barrier = threading.Barrier(12)

        def call(i: int) -> tuple[np.ndarray, np.ndarray]:
            x = np.arange(1 + i % 4, dtype=np.float32) + 10 * i
            x = x if i % 2 else x.reshape(-1, 1)
            with Client(target) as client:
                barrier.wait()
                return x, client.predict("m", {"x": x})["y"]

        with ThreadPoolExecutor(12) as pool:
            results = list(pool.map(call, range(12)))
    for x, y in results:
        assert y.shape == x.shape
        np.testing.assert_allclose(y, 0.5 * x + 2)


def test_hot_swap_with_batching(tmp_path: Path) -> None:
    estimator_version(tmp_path, 1, weight=1.0)
    errors: list[BaseException] = []
    seen: list[tuple[int, float]] = []
    stop = threading.Event()
    settings = batching(max_batch_size=16, batch_timeout_micros=2000)
    with serving(tmp_path, poll_seconds=0.05, batching=settings) as server:
        target = f"127.0.0.1:{server.port}"

        def hammer(i: int) -> None:
            with Client(target, timeout=10) as client:
                x = np.full([1 + i % 2, 1], float(i + 1), np.float32)
                while not stop.is_set():
                    try:
                        r = client.predict_full("m", {"number": x})
                    except Exception as err:
                        errors.append(err)
                        return
                    # output = 2 * version * x: the batch ran on the version it reports.
                    np.testing.assert_allclose(r.outputs["output"], 2 * r.version * x, rtol=1e-6)
                    seen.append((r.version, float(r.outputs["output"][0, 0])))

        threads = [threading.Thread(target=hammer, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        with Client(target) as admin:
            for version in range(2, 5):
                estimator_version(tmp_path, version, weight=float(version))
                wait_for(
                    lambda v=version: (
                        admin.predict_full("m", {"number": np.ones([1, 1], np.float32)}).version
                        == v
                    )
                )
        stop.set()
        for t in threads:
            t.join()
    assert not errors, errors[:3]
    assert {v for v, _ in seen} >= {1, 4}


class BlockingVersion:
    """Stands in for a LoadedVersion whose runs wait for the test."""

    version = 1

    def __init__(self) -> None:
        self.release = threading.Event()
        self.entered = threading.Event()
        self.calls: list[int] = []

    def execute(
        self, sig: SignatureSpec, wanted: tuple[str, ...], inputs: Mapping[str, np.ndarray]
    ) -> dict[str, np.ndarray]:
        self.entered.set()
        self.release.wait(10)
        x = inputs["x"]
        self.calls.append(x.shape[0])
        return {"y": x + 1}


SIG = SignatureSpec(
    "serving_default",
    "tensorflow/serving/predict",
    {"x": TensorSpec("x", "x:0", 1, (-1,))},
    {"y": TensorSpec("y", "y:0", 1, (-1,))},
)


@pytest.fixture
def blocked() -> Iterator[tuple[Batcher, BlockingVersion]]:
    version = BlockingVersion()
    settings = BatchingSettings(
        enabled=True,
        max_batch_size=4,
        batch_timeout_micros=0,
        max_enqueued_batches=2,
        num_batch_threads=1,
    )
    batcher = Batcher(version, settings, "m")  # type: ignore[arg-type]
    yield batcher, version
    version.release.set()
    batcher.stop()


def test_full_queue_is_refused_at_once(blocked: tuple[Batcher, BlockingVersion]) -> None:
    batcher, version = blocked
    with ThreadPoolExecutor(4) as pool:
        # One batch runs (blocked), two more wait: the queue (2 batches) is then full.
        running = [pool.submit(batcher.submit, SIG, ("y",), {"x": np.float32([0] * 4)})]
        assert version.entered.wait(10)
        running += [
            pool.submit(batcher.submit, SIG, ("y",), {"x": np.float32([i] * 4)}) for i in (1, 2)
        ]
        wait_for(lambda: batcher._batches == 2)
        with pytest.raises(ResourceExhausted) as exc:
            batcher.submit(SIG, ("y",), {"x": np.float32([9])})
        assert "batch queue is full (2 batches waiting)" in exc.value.message
        version.release.set()
        outs = [f.result(10) for f in running]
    assert sorted(float(o["y"][0]) for o in outs) == [1.0, 2.0, 3.0]
    assert version.calls == [4, 4, 4]


def test_oversized_request_is_refused(blocked: tuple[Batcher, BlockingVersion]) -> None:
    batcher, _ = blocked
    with pytest.raises(InvalidArgument):
        batcher.submit(SIG, ("y",), {"x": np.zeros([5], np.float32)})


def test_a_batch_reaching_the_largest_preferred_size_runs_without_waiting() -> None:
    """Triton's preferred_batch_size: 2 + 2 rows make a preferred 4-row batch, which runs at
    once although the batch timeout is a minute; a lone row waits for its deadline (stop)."""
    version = BlockingVersion()
    version.release.set()
    settings = BatchingSettings(
        enabled=True, max_batch_size=8, batch_timeout_micros=60_000_000, num_batch_threads=1,
        preferred_batch_sizes=(2, 4), mode="timeout",
    )  # fmt: skip
    batcher = Batcher(version, settings, "m")  # type: ignore[arg-type]
    try:
        with ThreadPoolExecutor(2) as pool:
            futures = [
                pool.submit(batcher.submit, SIG, ("y",), {"x": np.float32([i, i])}) for i in (1, 2)
            ]
            outs = [f.result(30) for f in futures]  # not the 60 s timeout
        assert sorted(float(o["y"][0]) for o in outs) == [2.0, 3.0]
        assert version.calls == [4]
    finally:
        batcher.stop()
