"""TF Serving's own command line and config file, given to `tensorflow_model_server` (ours)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import grpc
import numpy as np
import pytest
import tensorflow as tf
from prometheus_client.parser import text_string_to_metric_families
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from helpers import (
    HALF_PLUS_THREE,
    HALF_PLUS_TWO,
    REPO,
    TESTDATA,
    ServerProcess,
    copy_version,
    wait_for,
)
from swapserve_client import Client

PROGRAM = str(Path(sys.executable).parent / "tensorflow_model_server")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _post(url: str, body: object) -> object:
    request = urllib.request.Request(url, json.dumps(body).encode())
    with urllib.request.urlopen(request, timeout=30) as reply:
        return json.loads(reply.read())


def test_the_command_line_of_tf_servings_docs(tmp_path: Path) -> None:
    """tensorflow_model_server --rest_api_port=8501 --model_name=half_plus_two
    --model_base_path=/models/half_plus_two, then TF Serving's curl example."""
    copy_version(HALF_PLUS_TWO, tmp_path / "half_plus_two", 123)
    rest = _free_port()
    monitoring = tmp_path / "monitoring_config.txt"
    monitoring.write_text(
        'prometheus_config {\n  enable: true,\n  path: "/monitoring/prometheus/metrics"\n}\n'
    )
    server = ServerProcess(
        f"--rest_api_port={rest}",
        "--model_name=half_plus_two",
        f"--model_base_path={tmp_path / 'half_plus_two'}",
        "--rest_api_num_threads=4",  # tunes TF Serving only: accepted with a warning
        "--enable_batching",
        f"--batching_parameters_file={TESTDATA / 'batching_config.txt'}",  # TF Serving's own
        "--metrics-port=0",
        f"--monitoring_config_file={monitoring}",
        program="tensorflow_model_server",
    )
    try:
        with Client(f"127.0.0.1:{server.port}", timeout=30) as client:
            wait_for(lambda: client.status("half_plus_two")[0].state == "AVAILABLE", what="load")
        url = f"http://127.0.0.1:{rest}/v1/models/half_plus_two:predict"
        assert _post(url, {"instances": [1.0, 2.0, 5.0]}) == {"predictions": [2.5, 3.0, 4.5]}
        assert "--rest_api_num_threads (TensorFlow Serving) is ignored" in server.log
        # The request ran through the batcher that batching_config.txt configured.
        metrics_port = re.search(r"metrics on http://127\.0\.0\.1:(\d+)/metrics", server.log)
        assert metrics_port, server.log
        with urllib.request.urlopen(
            f"http://127.0.0.1:{metrics_port.group(1)}/metrics", timeout=30
        ) as reply:
            scraped = reply.read().decode()
        counts = re.findall(
            r'swapserve_batch_size_count\{model="half_plus_two"[^}]*\} (\S+)', scraped
        )
        assert counts and sum(float(c) for c in counts) >= 1, scraped[:2000]
        # --monitoring_config_file: the same metrics on the REST port, at TF Serving's path.
        with urllib.request.urlopen(
            f"http://127.0.0.1:{rest}/monitoring/prometheus/metrics", timeout=30
        ) as reply:
            assert reply.headers["Content-Type"].startswith("text/plain")
            assert "swapserve_batch_size_count" in reply.read().decode()
        _tf_servings_metric_names(server.port, rest)
    finally:
        assert server.stop() == 0


def _tf_servings_metric_names(port: int, rest: int) -> None:
    """TF Serving's own series on its monitoring path, as its exporter writes them."""
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        request = predict_pb2.PredictRequest()
        request.model_spec.name = "half_plus_two"
        request.inputs["x"].CopyFrom(tf.make_tensor_proto([1.0], tf.float32))
        stub.Predict(request, timeout=30)
    with contextlib.suppress(urllib.error.HTTPError):
        _post(f"http://127.0.0.1:{rest}/v1/models/nope:predict", {"instances": [1.0]})
    with urllib.request.urlopen(
        f"http://127.0.0.1:{rest}/monitoring/prometheus/metrics", timeout=30
    ) as reply:
        text = reply.read().decode()
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    # The raw lines, as Prometheus reads them (the Python parser would add "_total").
    assert "# TYPE :tensorflow:serving:request_count counter" in text
    ok = re.search(
        r'^:tensorflow:serving:request_count\{model_name="half_plus_two",status="OK"\} (\d+)$',
        text,
        re.M,
    )
    assert ok and int(ok.group(1)) >= 2, text[-3000:]
    assert re.search(
        r'^:tensorflow:serving:request_count\{model_name="",status="NOT_FOUND"\} 1$', text, re.M
    )
    latency = ":tensorflow:serving:request_latency"
    for api, entrypoint in (("predict", "REST"), ("Predict", "GRPC")):
        labels = (("API", api), ("entrypoint", entrypoint), ("model_name", "half_plus_two"))
        assert samples[(f"{latency}_count", labels)] >= 1, text[:3000]
        buckets = [le for (n, ls), _ in samples.items() if n == f"{latency}_bucket"
                   for k, le in ls if k == "le" and (("API", api) in ls)]  # fmt: skip
        assert buckets[:3] == ["10", "18", "32.4"] and buckets[-1] == "+Inf"
        assert len(buckets) == 34


def test_tf_servings_model_config_file(tmp_path: Path) -> None:
    """TF Serving's good_model_config.txt, its paths pointed at copies of the test models."""
    copy_version(HALF_PLUS_TWO, tmp_path / "hp2", 123)
    copy_version(HALF_PLUS_THREE, tmp_path / "hp3", 123)
    text = (TESTDATA / "good_model_config.txt").read_text()
    text = text.replace("${TEST_HALF_PLUS_TWO_DIR}", str(tmp_path / "hp2"))
    text = text.replace("${TEST_HALF_PLUS_THREE_DIR}", str(tmp_path / "hp3"))
    config = tmp_path / "models.config"
    config.write_text(text)
    server = ServerProcess(
        f"--model_config_file={config}",
        "--model_config_file_poll_wait_seconds=1",
        "--metrics-port=0",
        program="tensorflow_model_server",
    )
    try:
        with Client(f"127.0.0.1:{server.port}", timeout=30) as client:
            x = {"x": np.float32([[2.0]])}

            def answers() -> tuple[float, float]:
                two = client.predict("half_plus_two", x)["y"]
                return float(two[0, 0]), float(client.predict("half_plus_three", x)["y"][0, 0])

            wait_for(lambda: _quiet(answers) == (3.0, 4.0), what="both models")
            # The file polled: half_plus_three removed from it goes away, no signal sent.
            second = text.rindex("config", 0, text.index('"half_plus_three"'))
            config.write_text(text[:second].rstrip().rstrip(",") + "\n}\n")
            wait_for(lambda: _quiet(answers) is None, what="half_plus_three to go")
            assert float(client.predict("half_plus_two", x)["y"][0, 0]) == 3.0
            # None of the removed model's series is left (loads, swaps, versions, runs...).
            metrics = f"http://127.0.0.1:{server.metrics_port}/metrics"
            with urllib.request.urlopen(metrics, timeout=30) as reply:
                scraped = reply.read().decode()
            assert 'model="half_plus_two"' in scraped
            left = [ln for ln in scraped.splitlines() if 'model="half_plus_three"' in ln]
            assert left == [], left[:10]
    finally:
        assert server.stop() == 0


def _quiet(fn: object) -> object:
    try:
        return fn()  # type: ignore[operator]
    except Exception:
        return None


def test_flags_that_cannot_apply_are_refused_with_what_to_use() -> None:
    out = subprocess.run(
        [PROGRAM, "--model_name=m", "--model_base_path=/tmp", "--use_alts_credentials=true"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2
    assert re.search(
        r"--use_alts_credentials \(TensorFlow Serving\) is not supported: use --tls-cert and "
        r"--tls-key",
        out.stderr,
    ), out.stderr


def test_the_images_entrypoint_honours_tf_servings_model_name(tmp_path: Path) -> None:
    """deploy/docker-entrypoint.sh as TF Serving's image runs: MODEL_NAME and MODEL_BASE_PATH
    pick the model; arguments are more flags (here: free ports for the test)."""
    copy_version(HALF_PLUS_TWO, tmp_path / "models" / "half_plus_two", 1)
    bin_dir = str(Path(sys.executable).parent)
    server = ServerProcess(
        "--rest-port=0",
        program=str(REPO / "deploy" / "docker-entrypoint.sh"),
        env={
            "MODEL_NAME": "half_plus_two",
            "MODEL_BASE_PATH": str(tmp_path / "models"),
            "PATH": f"{bin_dir}:{os.environ.get('PATH', '')}",
        },
    )
    try:
        url = f"http://127.0.0.1:{server.rest_port}/v1/models/half_plus_two:predict"
        wait_for(lambda: _quiet(lambda: _post(url, {"instances": [1.0]})), what="the model")
        assert _post(url, {"instances": [1.0, 3.0]}) == {"predictions": [2.5, 3.5]}
    finally:
        assert server.stop() == 0, server.log[-2000:]


def test_a_session_config_file_sets_the_thread_counts(tmp_path: Path) -> None:
    """--tensorflow_session_config_file (a ConfigProto; reading it needs TensorFlow's proto,
    so this translation test lives here, not in the unit tests)."""
    from swapserve.config.flags import build_parser
    from swapserve.config.from_flags import settings_from_args
    from swapserve.config.model_settings import SettingsError
    from swapserve.config.tfserving_flags import translate

    OURS = build_parser()._option_string_actions  # noqa: N806
    config = tmp_path / "session.txt"
    config.write_text("intra_op_parallelism_threads: 2\ninter_op_parallelism_threads: 3\n"
                      "allow_soft_placement: true\n")  # fmt: skip
    argv, warnings = translate(
        ["--model_name=m", f"--model_base_path={tmp_path}",
         f"--tensorflow_session_config_file={config}"],
        OURS,
    )  # fmt: skip
    parser = build_parser()
    session = settings_from_args(parser.parse_args(argv), parser).session
    assert (session.intra_op_threads, session.inter_op_threads) == (2, 3)
    assert warnings == [
        "--tensorflow_session_config_file (TensorFlow Serving): allow_soft_placement ignored; "
        "only the intra- and inter-op thread counts apply"
    ]
    config.write_text("intra_op_parallelism_thread: 2\n")
    with pytest.raises(SettingsError, match=r"session\.txt:1"):
        translate([f"--tensorflow_session_config_file={config}"], OURS)
