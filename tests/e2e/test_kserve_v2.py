"""KServe V2 / Open Inference Protocol through the real tritonclient."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest
import tensorflow as tf
import tritonclient.grpc as triton
from tritonclient.grpc import service_pb2, service_pb2_grpc
from tritonclient.utils import InferenceServerException

from helpers import (
    HALF_PLUS_TWO,
    copy_version,
    estimator_version,
    serving,
    serving_process,
)
from swapserve.export import export_model


@pytest.fixture(scope="module")
def hp2(tmp_path_factory: pytest.TempPathFactory) -> Iterator[triton.InferenceServerClient]:
    root = tmp_path_factory.mktemp("hp2")
    copy_version(HALF_PLUS_TWO, root, 123)
    with serving_process(root, "half_plus_two", "--poll-seconds", "600") as server:
        client = triton.InferenceServerClient(f"127.0.0.1:{server.port}")
        yield client
        client.close()


def test_server_health_and_metadata(hp2: triton.InferenceServerClient) -> None:
    assert hp2.is_server_live()
    assert hp2.is_server_ready()
    assert hp2.is_model_ready("half_plus_two")
    assert hp2.is_model_ready("half_plus_two", "123")
    assert not hp2.is_model_ready("half_plus_two", "7")
    assert not hp2.is_model_ready("nope")
    meta = hp2.get_server_metadata(as_json=True)
    assert meta["name"] == "swapserve"
    assert "model_repository" in meta["extensions"]


def test_model_metadata(hp2: triton.InferenceServerClient) -> None:
    meta = hp2.get_model_metadata("half_plus_two", as_json=True)
    assert meta["name"] == "half_plus_two"
    assert meta["versions"] == ["123"]
    assert meta["platform"] == "tensorflow_savedmodel"
    assert meta["inputs"] == [{"name": "x", "datatype": "FP32", "shape": ["-1", "1"]}]
    assert meta["outputs"] == [{"name": "y", "datatype": "FP32", "shape": ["-1", "1"]}]


@pytest.mark.parametrize("batch", [1, 64])
def test_infer_fp32(hp2: triton.InferenceServerClient, batch: int) -> None:
    x = np.linspace(-1, 1, batch, dtype=np.float32).reshape(batch, 1)
    inp = triton.InferInput("x", [batch, 1], "FP32")
    inp.set_data_from_numpy(x)
    result = hp2.infer(
        "half_plus_two", [inp], outputs=[triton.InferRequestedOutput("y")], request_id="req-7"
    )
    np.testing.assert_allclose(result.as_numpy("y"), 0.5 * x + 2, rtol=1e-6)
    response = result.get_response()
    assert response.model_version == "123"
    assert response.id == "req-7"
    assert len(response.raw_output_contents) == 1  # the request was raw, so is the answer


@pytest.mark.parametrize("batch", [1, 64])
def test_infer_bytes_tf_example(hp2: triton.InferenceServerClient, batch: int) -> None:
    xs = np.arange(batch, dtype=np.float32)
    serialized = np.array(
        [
            tf.train.Example(
                features=tf.train.Features(
                    feature={"x": tf.train.Feature(float_list=tf.train.FloatList(value=[v]))}
                )
            ).SerializeToString()
            for v in xs
        ],
        dtype=object,
    )
    inp = triton.InferInput("inputs", [batch], "BYTES")
    inp.set_data_from_numpy(serialized)
    param = {"signature_name": "regress_x_to_y"}
    result = hp2.infer("half_plus_two", [inp], parameters=param)
    np.testing.assert_allclose(result.as_numpy("outputs"), (0.5 * xs + 2).reshape(batch, 1))


def test_infer_typed_contents(hp2: triton.InferenceServerClient) -> None:
    """A client that sends typed contents gets typed contents back."""
    stub = service_pb2_grpc.GRPCInferenceServiceStub(hp2._channel)
    request = service_pb2.ModelInferRequest(model_name="half_plus_two", id="t")
    tensor = request.inputs.add(name="x", datatype="FP32", shape=[2, 1])
    tensor.contents.fp32_contents.extend([2.0, 4.0])
    response = stub.ModelInfer(request, timeout=10)
    assert not response.raw_output_contents
    [out] = response.outputs
    assert (out.name, out.datatype, list(out.shape)) == ("y", "FP32", [2, 1])
    assert list(out.contents.fp32_contents) == [3.0, 4.0]


@pytest.mark.parametrize(
    ("datatype", "shape", "data", "message"),
    [
        ("FP64", [1, 1], np.float64([[1]]), "has dtype DT_DOUBLE but DT_FLOAT is expected"),
        ("FP32", [1, 2], np.float32([[1, 2]]), "dimension 1 is 2 but 1 is expected"),
    ],
)
def test_infer_errors(
    hp2: triton.InferenceServerClient,
    datatype: str,
    shape: list[int],
    data: np.ndarray,
    message: str,
) -> None:
    inp = triton.InferInput("x", shape, datatype)
    inp.set_data_from_numpy(data)
    with pytest.raises(InferenceServerException) as exc:
        hp2.infer("half_plus_two", [inp])
    assert exc.value.status() == "StatusCode.INVALID_ARGUMENT"
    assert message in exc.value.message()


@pytest.mark.parametrize(
    ("datatype", "shape", "raw", "message"),
    [
        (
            "FP32",
            [2, 1],
            b"\0" * 4,
            "input 'x': raw content has 4 bytes but shape [2, 1] of FP32 needs 8",
        ),
        (
            "BYTES",
            [2],
            b"\1\0\0\0a",
            "input 'x': shape [2] needs 2 BYTES elements, raw content has 1",
        ),
        ("BYTES", [1], b"\\9\0\0\0a", "input 'x': raw BYTES content ends inside an element"),
        ("BF16", [1], b"\0\0", "input 'x': unsupported datatype 'BF16'"),
        ("FP32", [-1], b"", "input 'x': shape [-1] has a negative dimension"),
        # No elements, but a shape numpy cannot hold (found by the fuzz test).
        (
            "FP32",
            [0, 2**40, 2**40],
            b"",
            "input 'x': shape [0, 1099511627776, 1099511627776] has too many elements",
        ),
    ],
)
def test_malformed_raw_inputs(
    hp2: triton.InferenceServerClient, datatype: str, shape: list[int], raw: bytes, message: str
) -> None:
    stub = service_pb2_grpc.GRPCInferenceServiceStub(hp2._channel)
    request = service_pb2.ModelInferRequest(model_name="half_plus_two", raw_input_contents=[raw])
    request.inputs.add(name="x", datatype=datatype, shape=shape)
    with pytest.raises(grpc.RpcError) as exc:
        stub.ModelInfer(request, timeout=10)
    assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert exc.value.details().startswith(message)


def test_unknown_model_and_output(hp2: triton.InferenceServerClient) -> None:
    inp = triton.InferInput("x", [1, 1], "FP32")
    inp.set_data_from_numpy(np.float32([[1]]))
    with pytest.raises(InferenceServerException) as exc:
        hp2.infer("nope", [inp])
    assert exc.value.status() == "StatusCode.NOT_FOUND"
    with pytest.raises(InferenceServerException) as exc:
        hp2.infer("half_plus_two", [inp], outputs=[triton.InferRequestedOutput("z")])
    assert exc.value.status() == "StatusCode.INVALID_ARGUMENT"
    assert "unknown output 'z'" in exc.value.message()


def test_load_unload_and_repository_index(tmp_path: Path) -> None:
    estimator_version(tmp_path, 1, weight=1.0)
    with serving(tmp_path, name="seed", poll_seconds=0.05) as server:
        client = triton.InferenceServerClient(f"127.0.0.1:{server.port}")
        index = client.get_model_repository_index(as_json=True)
        assert index["models"] == [{"name": "seed", "version": "1", "state": "READY"}]
        client.unload_model("seed")
        assert not client.is_model_ready("seed")
        assert client.is_server_ready()  # as Triton: unloading on purpose keeps the pod ready
        index = client.get_model_repository_index(as_json=True)
        assert index["models"] == [{"name": "seed", "state": "UNAVAILABLE", "reason": "unloaded"}]
        inp = triton.InferInput("number", [1, 1], "FP32")
        inp.set_data_from_numpy(np.float32([[1]]))
        with pytest.raises(InferenceServerException) as exc:
            client.infer("seed", [inp])
        assert exc.value.status() == "StatusCode.UNAVAILABLE"
        assert "was unloaded" in exc.value.message()
        estimator_version(tmp_path, 2, weight=2.0)  # not picked up while unloaded
        client.load_model("seed")  # loads the newest
        assert client.is_model_ready("seed", "2")
        result = client.infer("seed", [inp])
        np.testing.assert_allclose(result.as_numpy("output"), [[4.0]])
        client.close()


def test_fp16_and_int64_round_trip(tmp_path: Path) -> None:
    class Mixed(tf.Module):
        @tf.function(
            input_signature=[
                tf.TensorSpec([None], tf.float16, name="h"),
                tf.TensorSpec([None], tf.int64, name="i"),
            ]
        )
        def serve(self, h: tf.Tensor, i: tf.Tensor) -> dict[str, tf.Tensor]:
            return {"h2": h * 2, "i2": i * 2}

    module = Mixed()
    export_model(module, tmp_path, signatures={"serving_default": module.serve}, version=1)
    with serving(tmp_path) as server:
        client = triton.InferenceServerClient(f"127.0.0.1:{server.port}")
        h = triton.InferInput("h", [3], "FP16")
        h.set_data_from_numpy(np.float16([1, 2, 3]))
        i = triton.InferInput("i", [3], "INT64")
        i.set_data_from_numpy(np.int64([1, -2, 1 << 40]))
        result = client.infer("m", [h, i])
        np.testing.assert_array_equal(result.as_numpy("h2"), np.float16([2, 4, 6]))
        np.testing.assert_array_equal(result.as_numpy("i2"), np.int64([2, -4, 1 << 41]))
        client.close()
