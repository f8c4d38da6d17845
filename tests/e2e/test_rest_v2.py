"""KServe V2 over HTTP on --rest-port, through the real tritonclient.http client and plain HTTP."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import tensorflow as tf
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

from helpers import HALF_PLUS_TWO, ServerProcess, copy_version, serving_process, serving_settings
from swapserve.app import App
from swapserve.config.model_settings import ModelSettings
from swapserve.config.settings import Settings


@pytest.fixture(scope="module")
def hp2(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[ServerProcess, triton.InferenceServerClient]]:
    root = tmp_path_factory.mktemp("hp2")
    copy_version(HALF_PLUS_TWO, root, 123)
    with serving_process(root, "half_plus_two", "--label", "stable=123", rest=True) as server:
        client = triton.InferenceServerClient(url=f"127.0.0.1:{server.rest_port}")
        yield server, client
        client.close()


def _x(rows: int) -> triton.InferInput:
    x = np.arange(rows, dtype=np.float32).reshape(rows, 1)
    tensor = triton.InferInput("x", [rows, 1], "FP32")
    tensor.set_data_from_numpy(x, binary_data=True)
    return tensor


def test_health_and_metadata(hp2: tuple[ServerProcess, triton.InferenceServerClient]) -> None:
    _, client = hp2
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready("half_plus_two")
    assert client.is_model_ready("half_plus_two", "123")
    assert client.is_model_ready("half_plus_two", "stable")
    assert not client.is_model_ready("half_plus_two", "7")
    assert not client.is_model_ready("nope")
    assert client.get_server_metadata()["name"] == "swapserve"
    meta = client.get_model_metadata("half_plus_two")
    assert meta["versions"] == ["123"] and meta["platform"] == "tensorflow_savedmodel"
    assert meta["inputs"] == [{"name": "x", "datatype": "FP32", "shape": [-1, 1]}]


@pytest.mark.parametrize("rows", [1, 64])
@pytest.mark.parametrize("binary", [True, False])
def test_infer_fp32_binary_and_json(
    hp2: tuple[ServerProcess, triton.InferenceServerClient], rows: int, binary: bool
) -> None:
    _, client = hp2
    x = np.arange(rows, dtype=np.float32).reshape(rows, 1)
    tensor = triton.InferInput("x", [rows, 1], "FP32")
    tensor.set_data_from_numpy(x, binary_data=binary)
    out = triton.InferRequestedOutput("y", binary_data=binary)
    result = client.infer("half_plus_two", [tensor], outputs=[out], request_id="r-1")
    np.testing.assert_allclose(result.as_numpy("y"), 0.5 * x + 2)
    response = result.get_response()
    assert response["model_version"] == "123" and response["id"] == "r-1"


def test_infer_default_outputs_and_versions(
    hp2: tuple[ServerProcess, triton.InferenceServerClient],
) -> None:
    _, client = hp2
    for version in ("", "123", "stable"):
        result = client.infer("half_plus_two", [_x(3)], model_version=version)
        np.testing.assert_allclose(result.as_numpy("y"), [[2.0], [2.5], [3.0]])


def test_bytes_inputs_through_a_regress_signature(
    hp2: tuple[ServerProcess, triton.InferenceServerClient],
) -> None:
    _, client = hp2
    examples = np.array(
        [
            tf.train.Example(
                features=tf.train.Features(
                    feature={"x": tf.train.Feature(float_list=tf.train.FloatList(value=[v]))}
                )
            ).SerializeToString()
            for v in (1.0, 2.0)
        ],
        dtype=object,
    )
    tensor = triton.InferInput("inputs", [2], "BYTES")
    tensor.set_data_from_numpy(examples, binary_data=True)
    result = client.infer(
        "half_plus_two", [tensor], parameters={"signature_name": "regress_x_to_y"}
    )
    np.testing.assert_allclose(result.as_numpy("outputs").reshape(-1), [2.5, 3.0])


def _post(app: App, path: str, body: Any) -> tuple[int, Any]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(f"http://127.0.0.1:{app.rest_port}{path}", data=data)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        with err:
            return err.code, json.loads(err.read())


def test_plain_json_requests(hp2: tuple[ServerProcess, triton.InferenceServerClient]) -> None:
    app, _ = hp2
    status, body = _post(
        app,
        "/v2/models/half_plus_two/infer",
        {
            "id": "7",
            "inputs": [{"name": "x", "shape": [2, 1], "datatype": "FP32", "data": [[1], [2]]}],
        },
    )
    assert status == 200
    assert body == {
        "model_name": "half_plus_two",
        "model_version": "123",
        "id": "7",
        "outputs": [{"name": "y", "datatype": "FP32", "shape": [2, 1], "data": [2.5, 3.0]}],
    }


@pytest.mark.parametrize(
    ("path", "body", "status", "words"),
    [
        ("/v2/models/half_plus_two/infer", b"{bad", 400, "not valid JSON"),
        ("/v2/models/half_plus_two/infer", {"inputs": []}, 400, "non-empty"),
        ("/v2/models/half_plus_two/infer",
         {"inputs": [{"name": "x", "shape": [2, 1], "datatype": "FP32", "data": [1]}]}, 400, "needs 2"),
        ("/v2/models/half_plus_two/infer",
         {"inputs": [{"name": "x", "shape": [1, 1], "datatype": "FP99", "data": [1]}]}, 400,
         "unsupported datatype"),
        ("/v2/models/half_plus_two/infer",
         {"inputs": [{"name": "x", "shape": [1, 1], "datatype": "FP32", "data": ["a"]}]}, 400,
         "must be numbers"),
        ("/v2/models/nope/infer",
         {"inputs": [{"name": "x", "shape": [1, 1], "datatype": "FP32", "data": [1]}]}, 404, "nope"),
        ("/v2/models/half_plus_two/versions/9/infer",
         {"inputs": [{"name": "x", "shape": [1, 1], "datatype": "FP32", "data": [1]}]}, 404,
         "version 9"),
    ],
)  # fmt: skip
def test_errors(
    hp2: tuple[ServerProcess, triton.InferenceServerClient],
    path: str,
    body: Any,
    status: int,
    words: str,
) -> None:
    app, _ = hp2
    got, answer = _post(app, path, body)
    assert got == status and words in answer["error"], answer


def test_repository_index_load_unload(
    hp2: tuple[ServerProcess, triton.InferenceServerClient],
) -> None:
    _, client = hp2
    index = client.get_model_repository_index()
    assert index == [{"name": "half_plus_two", "version": "123", "state": "READY"}]
    client.unload_model("half_plus_two")
    assert not client.is_model_ready("half_plus_two")
    with pytest.raises(InferenceServerException) as err:
        client.infer("half_plus_two", [_x(1)])
    assert "unloaded" in str(err.value)
    client.load_model("half_plus_two")
    assert client.is_model_ready("half_plus_two")


def test_v2_http_admin_calls_follow_the_token_rule(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    admin = "admin-token-0123456789abcdef"
    data = "data-token-0123456789abcdef"
    root = tmp_path_factory.mktemp("admin")
    copy_version(HALF_PLUS_TWO, root, 1)
    settings = Settings(
        models=(ModelSettings(name="m", export_root=root),),
        host="127.0.0.1",
        port=0,
        rest_port=0,
        admin_token=admin,
        token=data,
    )
    with serving_settings(settings) as app:
        client = triton.InferenceServerClient(url=f"127.0.0.1:{app.rest_port}")
        try:
            with pytest.raises(InferenceServerException) as err:
                client.load_model("m")
            assert "401" in str(err.value.status()) or "needs an" in str(err.value)
            with pytest.raises(InferenceServerException) as err:
                client.load_model("m", headers={"Authorization": f"Bearer {data}"})
            assert "invalid admin token" in str(err.value)
            client.load_model("m", headers={"Authorization": f"Bearer {admin}"})
            result = client.infer("m", [_x(1)], headers={"Authorization": f"Bearer {data}"})
            np.testing.assert_allclose(result.as_numpy("y"), [[2.0]])
        finally:
            client.close()


def test_nothing_serving_is_503(tmp_path_factory: pytest.TempPathFactory) -> None:
    settings = Settings(
        models=(ModelSettings(name="m", export_root=tmp_path_factory.mktemp("none")),),
        host="127.0.0.1",
        port=0,
        rest_port=0,
    )
    with serving_settings(settings, wait=False) as app:
        status, body = _post(
            app,
            "/v2/models/m/infer",
            {"inputs": [{"name": "x", "shape": [1, 1], "datatype": "FP32", "data": [1]}]},
        )
        assert status == 503 and "no version loaded yet" in body["error"]
        client = triton.InferenceServerClient(url=f"127.0.0.1:{app.rest_port}")
        assert client.is_server_live() and not client.is_server_ready()
        client.close()
