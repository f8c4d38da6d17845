"""Every protocol surface against one real ``swapserve`` process started from its console script
(issue 30, item 3: an in-process test hid a 500 on REST metadata because other test modules had
imported ``tensorflow_serving`` into the same process). Nothing test-only is in the server; this
file passes alone (``make test`` also runs each protocol file alone)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
import tensorflow as tf
import tritonclient.grpc as triton_grpc
import tritonclient.http as triton_http
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from helpers import HALF_PLUS_TWO, ServerProcess, copy_version, serving_process
from swapserve_client import Client, SwapserveError

ADMIN = "admin-token-0123456789"
X = np.array([[1.0], [2.0]], np.float32)


class Served:
    def __init__(self, server: ServerProcess, metrics_port: int) -> None:
        self.server = server
        self.metrics_port = metrics_port
        self.target = f"127.0.0.1:{server.port}"
        self.rest = f"http://127.0.0.1:{server.rest_port}"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("m")
    copy_version(HALF_PLUS_TWO, root, 123)
    token = tmp_path_factory.mktemp("secrets") / "admin"
    token.write_text(ADMIN)
    with serving_process(
        root, "m", "--metrics-port", "0", "--rest-metrics-path", "/monitoring/prometheus/metrics",
        "--admin-token-file", str(token), rest=True,
    ) as server:  # fmt: skip
        yield Served(server, server.metrics_port)
    assert "Traceback" not in server.log, server.log[-3000:]


def _http(url: str, body: bytes | None = None) -> tuple[int, Any]:
    request = urllib.request.Request(url, data=body, method="POST" if body is not None else "GET")
    try:
        with urllib.request.urlopen(request, timeout=30) as reply:
            data = reply.read()
            return reply.status, json.loads(data) if data.startswith((b"{", b"[")) else data
    except urllib.error.HTTPError as err:
        with err:
            return err.code, json.loads(err.read())


def test_swapserve_v1_grpc(served: Served) -> None:
    with Client(served.target, timeout=30) as client:
        out = client.predict_full("m", {"x": X})
        assert out.version == 123
        np.testing.assert_allclose(out.outputs["y"], 0.5 * X + 2)
        assert client.model_status("m").serving_version == 123
        assert "serving_default" in client.metadata("m").signatures


def test_swapserve_v1_admin_reload_needs_the_admin_token(served: Served) -> None:
    with Client(served.target, timeout=30) as client:
        with pytest.raises(SwapserveError) as err:
            client.reload("m")
        assert err.value.code == grpc.StatusCode.UNAUTHENTICATED
        bearer = [("authorization", f"Bearer {ADMIN}")]
        with Client(served.target, timeout=60, metadata=bearer) as admin:
            assert admin.reload("m").version == 123
        assert client.model_status("m").serving_version == 123


def test_tfserving_grpc(served: Served) -> None:
    with grpc.insecure_channel(served.target) as channel:
        predict = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        request = predict_pb2.PredictRequest()
        request.model_spec.name = "m"
        request.inputs["x"].CopyFrom(tf.make_tensor_proto(X))
        reply = predict.Predict(request, timeout=30)
        np.testing.assert_allclose(tf.make_ndarray(reply.outputs["y"]), 0.5 * X + 2)
        meta = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
        meta.model_spec.name = "m"
        assert predict.GetModelMetadata(meta, timeout=30).model_spec.version.value == 123
        status = get_model_status_pb2.GetModelStatusRequest()
        status.model_spec.name = "m"
        reply_status = model_service_pb2_grpc.ModelServiceStub(channel).GetModelStatus(status)
        assert [v.version for v in reply_status.model_version_status] == [123]


def test_tfserving_rest(served: Served) -> None:
    assert _http(f"{served.rest}/v1/models/m") == (
        200,
        {"model_version_status": [{"version": "123", "state": "AVAILABLE",
                                   "status": {"error_code": "OK", "error_message": ""}}]},
    )  # fmt: skip
    for path in ("/v1/models/m/metadata", "/v1/models/m/versions/123/metadata"):
        status, body = _http(served.rest + path)
        assert status == 200, body  # was a 500 from the real server
        assert "serving_default" in body["metadata"]["signature_def"]["signature_def"]
    status, body = _http(f"{served.rest}/v1/models/m:predict", b'{"instances": [1.0, 2.0]}')
    assert (status, body) == (200, {"predictions": [2.5, 3.0]})


def test_kserve_v2_grpc(served: Served) -> None:
    client = triton_grpc.InferenceServerClient(served.target)
    try:
        assert client.is_server_ready() and client.is_model_ready("m")
        tensor = triton_grpc.InferInput("x", [2, 1], "FP32")
        tensor.set_data_from_numpy(X)
        result = client.infer("m", [tensor])
        np.testing.assert_allclose(result.as_numpy("y"), 0.5 * X + 2)
        index = client.get_model_repository_index(as_json=True)
        assert [m["name"] for m in index["models"]] == ["m"]
    finally:
        client.close()


def test_kserve_v2_http(served: Served) -> None:
    client = triton_http.InferenceServerClient(served.rest.removeprefix("http://"))
    try:
        assert client.is_server_ready() and client.is_model_ready("m")
        assert client.get_model_metadata("m")["versions"] == ["123"]
        tensor = triton_http.InferInput("x", [2, 1], "FP32")
        tensor.set_data_from_numpy(X, binary_data=True)
        np.testing.assert_allclose(client.infer("m", [tensor]).as_numpy("y"), 0.5 * X + 2)
    finally:
        client.close()


def test_health_and_metrics(served: Served) -> None:
    assert _http(f"{served.rest}/healthz")[0] == 200
    assert _http(f"{served.rest}/readyz")[0] == 200
    for url in (
        f"http://127.0.0.1:{served.metrics_port}/metrics",
        f"{served.rest}/monitoring/prometheus/metrics",
    ):
        status, text = _http(url)
        assert status == 200 and b'swapserve_served_version{model="m"} 123.0' in text, text[:300]


def test_this_file_runs_the_server_in_its_own_process(served: Served) -> None:
    assert served.server.proc.pid != 0 and Path(f"/proc/{served.server.proc.pid}").exists()
