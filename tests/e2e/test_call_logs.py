"""The access log and the request log (issue 15): one line per call with no payload or token;
predictions recorded under load as TF Serving PredictionLog TFRecords, read back by TensorFlow
and replayed as the next version's warm-up; bounded disk; a broken log directory never fails a
request."""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import prediction_log_pb2

from helpers import (
    HALF_PLUS_TWO,
    CallLoad,
    ServerProcess,
    copy_version,
    serving_settings,
    wait_for,
)
from swapserve.config.model_settings import ModelSettings
from swapserve.config.settings import Settings
from swapserve.model.warmup import WARMUP_FILE
from swapserve_client import Client, SwapserveError

TOKEN = "data-token-0123456789abcdef"


def _settings(root: Path, **server: object) -> Settings:
    return Settings(
        models=(ModelSettings("m", root, poll_seconds=0.1),),
        host="127.0.0.1",
        port=0,
        grace_seconds=5.0,
        **server,  # type: ignore[arg-type]
    )


def test_access_log_lines_in_json_without_payload_or_token(tmp_path: Path) -> None:
    copy_version(HALF_PLUS_TWO, tmp_path / "m", 123)
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)
    server = ServerProcess(
        "--model-name", "m", "--export-root", str(tmp_path / "m"), "--access-log",
        "--log-format", "json", "--token-file", str(token_file),
    )  # fmt: skip
    try:
        auth = [("authorization", f"Bearer {TOKEN}")]
        with Client(f"127.0.0.1:{server.port}", metadata=auth, timeout=30) as client:
            wait_for(lambda: client.status("m")[0].state == "AVAILABLE", what="load")
            client.predict("m", {"x": np.float32([[1.25], [7.5]])})
            with pytest.raises(SwapserveError):
                client.predict("m", {"x": np.float32([[1.0]])}, signature="nope")
            with pytest.raises(SwapserveError):
                client.predict("other\nmodel", {"x": np.float32([[1.0]])})
    finally:
        assert server.stop() == 0
    lines = [json.loads(ln) for ln in server.lines if ln.startswith("{")]
    access = [ln for ln in lines if ln.get("event") == "access" and ln["method"] == "Predict"]
    assert [(a["model"], a["version"], a["signature"], a["rows"], a["code"]) for a in access] == [
        ("m", 123, "serving_default", 2, "OK"),
        ("m", 123, "", 0, "FAILED_PRECONDITION"),
        ("other\nmodel", 0, "", 0, "NOT_FOUND"),
    ]
    assert all(a["peer"].startswith("ipv4:127.0.0.1:") and a["ms"] > 0 for a in access)
    assert TOKEN not in server.log and "1.25" not in server.log and "7.5" not in server.log


def test_access_log_sampling_and_text(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="swapserve.access")
    copy_version(HALF_PLUS_TWO, tmp_path, 123)
    settings = _settings(tmp_path, access_log=True, access_log_sample=0.25, rest_port=0)
    with serving_settings(settings) as app, Client(f"127.0.0.1:{app.port}") as client:
        for _ in range(400):
            client.predict("m", {"x": np.float32([[1.0]])})
    lines = [r.getMessage() for r in caplog.records if r.name == "swapserve.access"]
    assert 40 <= len(lines) <= 160, len(lines)  # 100 expected; binomial, far from the bounds
    assert lines[0].startswith("swapserve Predict model=m version=123 signature=serving_default")


def _read_records(directory: Path) -> list[prediction_log_pb2.PredictionLog]:
    out = []
    for path in sorted(directory.glob("requests-*.tfrecord")):
        for raw in tf.data.TFRecordDataset(str(path)):
            out.append(prediction_log_pb2.PredictionLog.FromString(raw.numpy()))
    return out


def test_request_log_under_load_becomes_the_next_warm_up(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="swapserve")
    root, logs = tmp_path / "m", tmp_path / "log"
    copy_version(HALF_PLUS_TWO, root, 1)
    settings = _settings(root, request_log=logs, request_log_responses=True)
    with serving_settings(settings) as app, Client(f"127.0.0.1:{app.port}") as client:
        rows = iter(range(1, 10**6))

        def predict() -> None:
            n = next(rows) % 7 + 1
            client.predict("m", {"x": np.full([n, 1], n, np.float32)})

        with CallLoad([predict], threads=4) as load:
            load.wait_for_answers(200)
        metrics = app.metrics.registry
        wait_for(
            lambda: metrics.get_sample_value(
                "swapserve_request_log_records_total", {"result": "written"}
            ) == load.ok,
            what="every answered call written",
        )  # fmt: skip
        assert load.errors == []
    records = _read_records(logs)
    assert len(records) == load.ok
    first = records[0].predict_log
    assert first.request.model_spec.name == "m" and first.request.model_spec.version.value == 1
    x = tf.make_ndarray(first.request.inputs["x"])
    np.testing.assert_allclose(tf.make_ndarray(first.response.outputs["y"]), 0.5 * x + 2)
    # The recorded traffic as the next export's warm-up set.
    staged = copy_version(HALF_PLUS_TWO, tmp_path / "staging", 2)
    (staged / WARMUP_FILE).parent.mkdir(parents=True)
    shutil.copy(sorted(logs.glob("requests-*.tfrecord"))[0], staged / WARMUP_FILE)
    staged.rename(root / "2")
    expected = min(len(records), 1000)  # TF Serving replays at most 1000
    with (
        serving_settings(replace(settings, request_log=None)) as app,
        Client(f"127.0.0.1:{app.port}") as client,
    ):
        wait_for(lambda: client.predict_full("m", {"x": np.float32([[2]])}).version == 2)
    assert any(
        f"version 2: replayed {expected} warm-up records" in r.getMessage() for r in caplog.records
    )


def _sizes(logs: Path) -> list[int]:
    sizes = []
    for f in logs.glob("requests-*.tfrecord"):
        try:
            sizes.append(f.stat().st_size)
        except FileNotFoundError:
            continue
    return sizes


def test_request_log_disk_bound_and_a_broken_directory(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root, logs = tmp_path / "m", tmp_path / "log"
    copy_version(HALF_PLUS_TWO, root, 1)
    settings = _settings(
        root, request_log=logs, request_log_max_bytes=4096, request_log_max_files=3
    )
    with serving_settings(settings) as app, Client(f"127.0.0.1:{app.port}") as client:
        x = {"x": np.ones([8, 1], np.float32)}
        metrics = app.metrics.registry

        def written() -> float:
            value = metrics.get_sample_value(
                "swapserve_request_log_records_total", {"result": "written"}
            )
            return value or 0.0

        with CallLoad([lambda: client.predict("m", x)], threads=4) as load:
            wait_for(lambda: written() >= 200, what="200 records written")
            sizes = _sizes(logs)  # the writer rotates meanwhile: a listed file may be gone
            assert 1 <= len(sizes) <= 3, sizes
            assert all(size <= 4096 + 512 for size in sizes), sizes
            # The directory replaced by a file: new log files cannot be created. (Renamed away
            # rather than removed: the writer may rotate into it while rmtree walks it.)
            logs.rename(logs.with_name("log-gone"))
            logs.write_text("not a directory")
            wait_for(
                lambda: (metrics.get_sample_value(
                    "swapserve_request_log_records_total", {"result": "failed"}
                ) or 0) >= 20,
                what="write failures counted",
            )  # fmt: skip
            load.wait_for_answers(100)
        assert load.errors == []
    errors = [r for r in caplog.records if "request log: cannot write" in r.getMessage()]
    assert 1 <= len(errors) <= 2, [r.getMessage() for r in errors]
