"""TF Serving warm-up records (assets.extra/tf_serving_warmup_requests) run before serving."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2

from helpers import HALF_PLUS_TWO, copy_version, serving, wait_for
from swapserve.model.warmup import WARMUP_FILE
from swapserve_client import Client


def _write_warmup(version_dir: Path, inputs: dict[str, np.ndarray], count: int) -> None:
    path = version_dir / WARMUP_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    with tf.io.TFRecordWriter(str(path)) as writer:
        for _ in range(count):
            request = predict_pb2.PredictRequest(
                model_spec=model_pb2.ModelSpec(name="m", signature_name="serving_default")
            )
            for name, value in inputs.items():
                request.inputs[name].CopyFrom(tf.make_tensor_proto(value))
            log = prediction_log_pb2.PredictionLog(
                predict_log=prediction_log_pb2.PredictLog(request=request)
            )
            writer.write(log.SerializeToString())


def test_warmup_records_are_replayed(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="swapserve")
    version = copy_version(HALF_PLUS_TWO, tmp_path, 1)
    _write_warmup(version, {"x": np.array([[1.0]], np.float32)}, count=3)
    with serving(tmp_path) as server, Client(f"127.0.0.1:{server.port}") as client:
        np.testing.assert_allclose(client.predict("m", {"x": np.float32([[2]])})["y"], [[3.0]])
    assert any("version 1: replayed 3 warm-up records" in r.getMessage() for r in caplog.records)


def test_failing_warmup_record_fails_the_version(tmp_path: Path) -> None:
    copy_version(HALF_PLUS_TWO, tmp_path, 1)
    with (
        serving(tmp_path, poll_seconds=0.05) as server,
        Client(f"127.0.0.1:{server.port}") as client,
    ):
        staged = copy_version(HALF_PLUS_TWO, tmp_path / "staging", 2)
        _write_warmup(staged, {"wrong_name": np.array([[1.0]], np.float32)}, count=1)
        staged.rename(tmp_path / "2")
        wait_for(lambda: any(s.state == "FAILED" for s in client.status("m")), what="FAILED")
        [v2] = [s for s in client.status("m") if s.version == 2]
        assert v2.error.startswith("warm-up record 1 failed: unknown input 'wrong_name'")
        assert client.predict_full("m", {"x": np.float32([[2]])}).version == 1
