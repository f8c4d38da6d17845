"""What TF Serving and Triton users match on, against a real `tensorflow_model_server` (ours):
TF Serving's error texts, every loaded version listed, readiness through an unload."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest
import tensorflow as tf
import tritonclient.grpc as triton_grpc
import tritonclient.http as triton_http
from flawed import flawed_export
from google.protobuf import wrappers_pb2
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from helpers import (
    HALF_PLUS_THREE,
    TESTDATA,
    ServerProcess,
    copy_version,
    graph_version,
    serving_process,
    wait_for,
)
from swapserve_client import Client, SwapserveError

TWO_VERSIONS = TESTDATA / "saved_model_half_plus_two_2_versions"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """TF Serving's command line over a models.config serving two models, ``hp2`` with
    ``model_version_policy { all {} }`` (versions 123 and 124)."""
    tmp = tmp_path_factory.mktemp("dropin")
    for version in (123, 124):
        copy_version(TWO_VERSIONS / f"00000{version}", tmp / "hp2", version)
    copy_version(HALF_PLUS_THREE, tmp / "hp3", 1)
    config = tmp / "models.config"
    config.write_text(
        "model_config_list {\n"
        f'  config {{ name: "hp2" base_path: "{tmp / "hp2"}" model_platform: "tensorflow"\n'
        "           model_version_policy { all {} } }\n"
        f'  config {{ name: "hp3" base_path: "{tmp / "hp3"}" model_platform: "tensorflow" }}\n'
        "}\n"
    )
    process = ServerProcess(
        f"--model_config_file={config}",
        "--rest-port=0",
        "--rest_api_enable_cors_support",
        program="tensorflow_model_server",
    )
    try:
        with triton_grpc.InferenceServerClient(f"127.0.0.1:{process.port}") as client:
            wait_for(
                lambda: (
                    client.is_model_ready("hp2", "123")
                    and client.is_model_ready("hp2", "124")
                    and client.is_model_ready("hp3")
                ),
                timeout=120,
                what="both models",
            )
        yield process
    finally:
        assert process.stop() == 0, process.log[-3000:]


def _predict(model: str, version: int = 0) -> predict_pb2.PredictRequest:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    if version:
        request.model_spec.version.CopyFrom(wrappers_pb2.Int64Value(value=version))
    request.inputs["x"].dtype = 1  # DT_FLOAT
    request.inputs["x"].tensor_shape.dim.add(size=1)
    request.inputs["x"].float_val.append(1.0)
    return request


def test_tf_servings_error_texts_come_first_on_its_surfaces(server: ServerProcess) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        answer = stub.Predict(_predict("hp2"), timeout=30).outputs["y"]
        assert tf.make_ndarray(answer).tolist() == [2.5]
        for request, words in [
            (_predict("nope"), "Servable not found for request: Latest(nope). "),
            (_predict("hp2", 7), "Servable not found for request: Specific(hp2, 7). "),
        ]:
            with pytest.raises(grpc.RpcError) as err:
                stub.Predict(request, timeout=30)
            assert err.value.code() == grpc.StatusCode.NOT_FOUND
            assert err.value.details().startswith(words), err.value.details()
        with pytest.raises(grpc.RpcError) as err:
            stub.Predict(_predict("nope"), timeout=30)
        assert "model 'nope' is not served here (models: 'hp2', 'hp3')" in err.value.details()
    # The same words on TF Serving's REST API; our own API keeps its own.
    body = json.dumps({"instances": [1.0]}).encode()
    for path, words in [
        ("/v1/models/nope:predict", "Servable not found for request: Latest(nope). "),
        ("/v1/models/hp2/versions/7:predict", "Servable not found for request: Specific(hp2, 7)"),
    ]:
        url = f"http://127.0.0.1:{server.rest_port}{path}"
        with pytest.raises(urllib.error.HTTPError) as http_err:
            urllib.request.urlopen(urllib.request.Request(url, body), timeout=30)
        assert http_err.value.code == 404
        assert json.loads(http_err.value.read())["error"].startswith(words)
    with triton_grpc.InferenceServerClient(f"127.0.0.1:{server.port}") as client:
        tensor = triton_grpc.InferInput("x", [1, 1], "FP32")
        tensor.set_data_from_numpy(np.float32([[1.0]]))
        with pytest.raises(triton_grpc.InferenceServerException) as v2_err:
            client.infer("nope", [tensor])
        assert v2_err.value.message().startswith("model 'nope' is not served here")


def test_cors_as_tf_serving_answers_it(server: ServerProcess) -> None:
    """--rest_api_enable_cors_support: preflights, and the headers on every answer."""
    url = f"http://127.0.0.1:{server.rest_port}/v1/models/hp2:predict"
    preflight = urllib.request.Request(url, method="OPTIONS", headers={"Origin": "https://a.b"})
    with urllib.request.urlopen(preflight, timeout=30) as reply:
        assert reply.status == 200
        assert reply.headers["Access-Control-Allow-Origin"] == "*"
        assert reply.headers["Access-Control-Allow-Methods"] == "POST, GET"
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(urllib.request.Request(url, method="OPTIONS"), timeout=30)
    assert refused.value.code == 400
    assert "Origin header is missing in CORS preflight" in refused.value.read().decode()
    body = json.dumps({"instances": [1.0]}).encode()
    with urllib.request.urlopen(urllib.request.Request(url, body), timeout=30) as reply:
        assert reply.headers["Access-Control-Allow-Origin"] == "*"
        assert json.loads(reply.read()) == {"predictions": [2.5]}


def test_every_loaded_version_is_listed(server: ServerProcess) -> None:
    """Triton lists every loaded version in model metadata and the repository index."""
    with triton_grpc.InferenceServerClient(f"127.0.0.1:{server.port}") as client:
        assert client.get_model_metadata("hp2").versions == ["123", "124"]
        assert client.get_model_metadata("hp2", "123").versions == ["123", "124"]
        rows = client.get_model_repository_index(as_json=True)["models"]
        assert sorted((r["name"], r["version"], r["state"]) for r in rows) == [
            ("hp2", "123", "READY"),
            ("hp2", "124", "READY"),
            ("hp3", "1", "READY"),
        ]
    http = triton_http.InferenceServerClient(f"127.0.0.1:{server.rest_port}")
    try:
        assert http.get_model_metadata("hp2")["versions"] == ["123", "124"]
    finally:
        http.close()


def test_unloading_one_model_keeps_the_server_ready(server: ServerProcess) -> None:
    """Triton stays ready when a model is unloaded on purpose; a readiness probe must not pull
    the pod. Runs last in this file (it unloads hp3, then loads it back)."""
    http = triton_http.InferenceServerClient(f"127.0.0.1:{server.rest_port}")
    try:
        with triton_grpc.InferenceServerClient(f"127.0.0.1:{server.port}") as client:
            client.unload_model("hp3")
            assert not client.is_model_ready("hp3")
            assert client.is_server_ready() and http.is_server_ready()
            with urllib.request.urlopen(
                f"http://127.0.0.1:{server.rest_port}/v2/health/ready", timeout=30
            ) as reply:
                assert reply.status == 200
            client.load_model("hp3")
            assert client.is_model_ready("hp3") and client.is_server_ready()
    finally:
        http.close()


def test_saved_model_tags_grpc_channel_arguments_and_socket_path(tmp_path: Path) -> None:
    """--saved_model_tags picks the MetaGraph; --grpc_channel_arguments reach gRPC core (here a
    receive limit smaller than ours, so a large request is refused by gRPC itself);
    --grpc_socket_path serves on a Unix socket too."""
    (tmp_path / "m").mkdir()
    graph_version(tmp_path / "m", 1, tags=("serve", "custom"))
    flags = (
        "--saved_model_tags=custom,serve",
        "--grpc_channel_arguments=grpc.max_receive_message_length=4096",
        f"--grpc_socket_path={tmp_path / 'grpc.sock'}",
    )
    with (
        serving_process(tmp_path / "m", "m", *flags) as server,
        grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel,
    ):
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        answer = stub.Predict(_predict("m"), timeout=30).outputs["y"]
        assert tf.make_ndarray(answer).tolist() == [2.5]
        large = _predict("m")
        large.inputs["x"].float_val.extend([1.0] * 2000)
        large.inputs["x"].tensor_shape.dim[0].size = 2001
        with pytest.raises(grpc.RpcError) as err:
            stub.Predict(large, timeout=30)
        assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        # --grpc_socket_path: the same services on a Unix socket, whose callers are local.
        with Client(f"unix:{tmp_path / 'grpc.sock'}", timeout=30) as local:
            assert local.predict("m", {"x": np.float32([[1.0]])})["y"].tolist() == [[2.5]]
            assert local.reload("m").version == 1
    # Without the flag the 'serve' MetaGraph is looked for, and its absence is reported.
    (tmp_path / "n").mkdir()
    graph_version(tmp_path / "n", 1, tags=("custom",))
    server = ServerProcess("--model-name", "n", "--export-root", str(tmp_path / "n"))
    try:
        wait_for(lambda: "failed to load" in server.log, timeout=60, what="the load to fail")
        assert "serve" in server.log and "custom" in server.log
    finally:
        server.stop()


def test_rest_api_timeout_answers_504_and_the_server_goes_on(tmp_path: Path) -> None:
    """--rest_api_timeout_in_ms: a call past it gets 504 (TF Serving's status for
    DEADLINE_EXCEEDED); gRPC is not timed by it; later calls are answered."""
    flawed_export(tmp_path / "slow", 1, "slow")  # ~6 600x600 matmuls per call
    with serving_process(
        tmp_path / "slow", "slow", "--rest_api_timeout_in_ms=1", "--rest-port=0", "--no-warm-up"
    ) as server:
        url = f"http://127.0.0.1:{server.rest_port}/v1/models/slow:predict"
        body = json.dumps({"instances": [1.0]}).encode()
        with pytest.raises(urllib.error.HTTPError) as timed_out:
            urllib.request.urlopen(urllib.request.Request(url, body), timeout=30)
        assert timed_out.value.code == 504
        assert "Deadline exceeded" in json.loads(timed_out.value.read())["error"]
        with Client(f"127.0.0.1:{server.port}", timeout=30) as client:
            assert client.predict("slow", {"x": np.float32([2.0])})["y"].tolist() == [2.0]


def test_per_model_batching_parameters_from_the_version_directory(tmp_path: Path) -> None:
    """--enable_per_model_batching_parameters: a version's batching_params.pbtxt sets its
    batching (here max_batch_size 4: a 5-row request is refused); a bad file fails only that
    version, naming the file."""
    root = tmp_path / "m"
    copy_version(HALF_PLUS_THREE, root, 1)
    (root / "1" / "batching_params.pbtxt").write_text(
        "max_batch_size { value: 4 }\nbatch_timeout_micros { value: 500 }\n"
    )
    flags = ("--enable_per_model_batching_parameters",)
    with (
        serving_process(root, "m", *flags) as server,
        Client(f"127.0.0.1:{server.port}", timeout=30) as client,
    ):
        assert client.predict("m", {"x": np.float32([[1.0]] * 4)})["y"].tolist() == [[3.5]] * 4
        with pytest.raises(SwapserveError, match="4") as refused:
            client.predict("m", {"x": np.float32([[1.0]] * 5)})
        assert refused.value.code == grpc.StatusCode.INVALID_ARGUMENT
        staging = tmp_path / "staging"
        copy_version(HALF_PLUS_THREE, staging, 2)
        (staging / "2" / "batching_params.pbtxt").write_text("max_batch_sise { value: 4 }\n")
        os.rename(staging / "2", root / "2")
        with pytest.raises(SwapserveError, match=r"batching_params\.pbtxt:1"):
            client.reload("m")
        assert client.model_status("m").serving_version == 1
