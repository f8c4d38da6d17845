"""TensorFlow Serving's own client stubs against our server, with TF Serving's test models."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest
import tensorflow as tf
from google.protobuf import wrappers_pb2
from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    inference_pb2,
    input_pb2,
    model_management_pb2,
    model_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
    regression_pb2,
)
from tensorflow_serving.config import model_server_config_pb2

from helpers import (
    BAD,
    HALF_PLUS_THREE,
    HALF_PLUS_TWO,
    HALF_PLUS_TWO_TF2,
    copy_version,
    serving,
    serving_process,
)
from swapserve.config.rollout_settings import RolloutSettings


class Stubs:
    def __init__(self, port: int) -> None:
        self.channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        self.predict = prediction_service_pb2_grpc.PredictionServiceStub(self.channel)
        self.model = model_service_pb2_grpc.ModelServiceStub(self.channel)


@pytest.fixture(scope="module")
def hp2(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stubs]:
    root = tmp_path_factory.mktemp("hp2")
    copy_version(HALF_PLUS_TWO, root, 123)
    with serving_process(root, "half_plus_two", "--poll-seconds", "600") as server:
        stubs = Stubs(server.port)
        yield stubs
        stubs.channel.close()


def predict_request(**inputs: tf.Tensor) -> predict_pb2.PredictRequest:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "half_plus_two"
    for name, value in inputs.items():
        request.inputs[name].CopyFrom(value)
    return request


def examples(*xs: float) -> input_pb2.Input:
    return input_pb2.Input(
        example_list=input_pb2.ExampleList(
            examples=[
                tf.train.Example(
                    features=tf.train.Features(
                        feature={"x": tf.train.Feature(float_list=tf.train.FloatList(value=[x]))}
                    )
                )
                for x in xs
            ]
        )
    )


@pytest.mark.parametrize("batch", [1, 64])
def test_predict(hp2: Stubs, batch: int) -> None:
    x = np.linspace(-1, 1, batch, dtype=np.float32).reshape(batch, 1)
    response = hp2.predict.Predict(predict_request(x=tf.make_tensor_proto(x)), timeout=10)
    np.testing.assert_allclose(tf.make_ndarray(response.outputs["y"]), 0.5 * x + 2, rtol=1e-6)
    assert response.model_spec.name == "half_plus_two"
    assert response.model_spec.version.value == 123
    assert response.model_spec.signature_name == "serving_default"


def test_predict_leaving_out_a_dimension_of_size_one(hp2: Stubs) -> None:
    """TF Serving feeds shape [3] to the [-1, 1] input unchanged; so do we, on every API."""
    request = predict_request(x=tf.make_tensor_proto(np.float32([1.0, 2.0, 5.0])))
    response = hp2.predict.Predict(request, timeout=10)
    np.testing.assert_allclose(tf.make_ndarray(response.outputs["y"]), [2.5, 3.0, 4.5])


def _raw(array: np.ndarray, shape: list[int]) -> tensor_pb2.TensorProto:
    proto = tensor_pb2.TensorProto(dtype=tf.as_dtype(array.dtype).as_datatype_enum)
    proto.tensor_shape.dim.extend(tensor_shape_pb2.TensorShapeProto.Dim(size=d) for d in shape)
    proto.tensor_content = array.tobytes()
    return proto


def test_predict_typed_values(hp2: Stubs) -> None:
    typed = predict_request()
    t = typed.inputs["x"]
    t.dtype = tf.float32.as_datatype_enum
    t.tensor_shape.dim.add(size=3)
    t.tensor_shape.dim.add(size=1)
    t.float_val.extend([1.0, 2.0, 3.0])
    response = hp2.predict.Predict(typed, timeout=10)
    np.testing.assert_allclose(tf.make_ndarray(response.outputs["y"]), [[2.5], [3.0], [3.5]])


def test_predict_scalar_broadcast(hp2: Stubs) -> None:
    # One float_val for a [4, 1] shape fills it, as tf.make_ndarray does.
    request = predict_request(x=tf.make_tensor_proto(7.0, dtype=tf.float32, shape=[4, 1]))
    assert not request.inputs["x"].tensor_content and len(request.inputs["x"].float_val) == 1
    response = hp2.predict.Predict(request, timeout=10)
    np.testing.assert_allclose(tf.make_ndarray(response.outputs["y"]), np.full([4, 1], 5.5))


def test_predict_version_and_signature(hp2: Stubs) -> None:
    request = predict_request(inputs=tf.make_tensor_proto(np.float32([[4.0]])))
    request.model_spec.version.value = 123
    request.model_spec.signature_name = "regress_x2_to_y3"
    request.output_filter.append("outputs")
    response = hp2.predict.Predict(request, timeout=10)
    np.testing.assert_allclose(tf.make_ndarray(response.outputs["outputs"]), [[5.0]])
    assert response.model_spec.signature_name == "regress_x2_to_y3"


@pytest.mark.parametrize(
    ("mutate", "code", "message"),
    [
        (
            lambda r: r.inputs["z"].CopyFrom(tf.make_tensor_proto(np.float32([[1]]))),
            grpc.StatusCode.INVALID_ARGUMENT,
            "unknown input 'z'",
        ),
        (lambda r: r.inputs.clear(), grpc.StatusCode.INVALID_ARGUMENT, "missing input 'x'"),
        (
            lambda r: setattr(r.model_spec, "name", "nope"),
            grpc.StatusCode.NOT_FOUND,
            "model 'nope' is not served here",
        ),
        (
            lambda r: r.model_spec.version.CopyFrom(wrappers_pb2.Int64Value(value=9)),
            grpc.StatusCode.NOT_FOUND,
            "version 9 of model 'half_plus_two' is not loaded",
        ),
        (
            lambda r: setattr(r.model_spec, "signature_name", "nope"),
            grpc.StatusCode.FAILED_PRECONDITION,
            "signature 'nope' not found",
        ),
        (
            lambda r: setattr(r.model_spec, "version_label", "stable"),
            grpc.StatusCode.INVALID_ARGUMENT,
            "Unrecognized servable version label: 'stable'",
        ),
        (
            lambda r: r.inputs["x"].CopyFrom(tf.make_tensor_proto(np.int32([[1]]))),
            grpc.StatusCode.INVALID_ARGUMENT,
            "has dtype DT_INT32 but DT_FLOAT is expected",
        ),
        (
            lambda r: r.inputs["x"].CopyFrom(_raw(np.float32([[1.0]]), shape=[1, 5])),
            grpc.StatusCode.INVALID_ARGUMENT,
            "input 'x': tensor_content has 4 bytes but shape [1, 5] of DT_FLOAT needs 20",
        ),
        (
            lambda r: r.inputs["x"].tensor_shape.__setattr__("unknown_rank", True),
            grpc.StatusCode.INVALID_ARGUMENT,
            "input 'x': tensor_shape has unknown rank",
        ),
        (
            lambda r: r.output_filter.append("nope"),
            grpc.StatusCode.INVALID_ARGUMENT,
            "output_filter names unknown output 'nope'",
        ),
    ],
)
def test_predict_errors(hp2: Stubs, mutate: object, code: grpc.StatusCode, message: str) -> None:
    request = predict_request(x=tf.make_tensor_proto(np.float32([[1.0]])))
    mutate(request)  # type: ignore[operator]
    with pytest.raises(grpc.RpcError) as exc:
        hp2.predict.Predict(request, timeout=10)
    assert exc.value.code() == code
    assert message in exc.value.details()


def test_typed_value_count_mismatch(hp2: Stubs) -> None:
    request = predict_request()
    t = request.inputs["x"]
    t.dtype = tf.float32.as_datatype_enum
    t.tensor_shape.dim.add(size=2)
    t.float_val.extend([1.0, 2.0, 3.0])
    with pytest.raises(grpc.RpcError) as exc:
        hp2.predict.Predict(request, timeout=10)
    assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "float_val has 3 values but shape [2] holds 2 elements" in exc.value.details()


def test_broadcast_cannot_ask_for_gigabytes(hp2: Stubs) -> None:
    # One float_val with a [2^20, 2^10] shape would broadcast to 4 GiB.
    request = predict_request()
    t = request.inputs["x"]
    t.dtype = tf.float32.as_datatype_enum
    t.tensor_shape.dim.add(size=1 << 20)
    t.tensor_shape.dim.add(size=1 << 10)
    t.float_val.append(1.0)
    with pytest.raises(grpc.RpcError) as exc:
        hp2.predict.Predict(request, timeout=10)
    assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "would take 4294967296 bytes, more than the 268435456 a request may use" in (
        exc.value.details()
    )
    ok = hp2.predict.Predict(
        predict_request(x=tf.make_tensor_proto(np.float32([[2.0]]))), timeout=10
    )
    np.testing.assert_allclose(tf.make_ndarray(ok.outputs["y"]), [[3.0]])


def test_regress(hp2: Stubs) -> None:
    for signature, offset in (("regress_x_to_y", 2.0), ("regress_x_to_y2", 3.0)):
        request = regression_pb2.RegressionRequest(
            model_spec=model_pb2.ModelSpec(name="half_plus_two", signature_name=signature),
            input=examples(1.0, 4.0),
        )
        response = hp2.predict.Regress(request, timeout=10)
        values = [r.value for r in response.result.regressions]
        np.testing.assert_allclose(values, [0.5 + offset, 2.0 + offset])
        assert response.model_spec.version.value == 123


def test_classify(hp2: Stubs) -> None:
    request = classification_pb2.ClassificationRequest(
        model_spec=model_pb2.ModelSpec(name="half_plus_two", signature_name="classify_x_to_y"),
        input=examples(2.0, -2.0),
    )
    response = hp2.predict.Classify(request, timeout=10)
    scores = [[c.score for c in cl.classes] for cl in response.result.classifications]
    np.testing.assert_allclose(scores, [[3.0], [1.0]])
    assert response.model_spec.signature_name == "classify_x_to_y"


def test_classify_with_context(hp2: Stubs) -> None:
    request = classification_pb2.ClassificationRequest(
        model_spec=model_pb2.ModelSpec(name="half_plus_two", signature_name="classify_x_to_y"),
    )
    ctx = request.input.example_list_with_context
    ctx.context.features.feature["x"].float_list.value.append(10.0)
    ctx.examples.add()  # takes x from the context
    ctx.examples.add().features.feature["x"].float_list.value.append(4.0)  # its own x wins
    response = hp2.predict.Classify(request, timeout=10)
    scores = [cl.classes[0].score for cl in response.result.classifications]
    np.testing.assert_allclose(scores, [7.0, 4.0])


def test_classify_and_regress_errors(hp2: Stubs) -> None:
    with pytest.raises(grpc.RpcError) as exc:
        hp2.predict.Regress(
            regression_pb2.RegressionRequest(
                model_spec=model_pb2.ModelSpec(
                    name="half_plus_two", signature_name="classify_x_to_y"
                ),
                input=examples(1.0),
            ),
            timeout=10,
        )
    assert exc.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "cannot regress: it needs output 'outputs'" in exc.value.details()
    with pytest.raises(grpc.RpcError) as exc:
        hp2.predict.Classify(
            classification_pb2.ClassificationRequest(
                model_spec=model_pb2.ModelSpec(
                    name="half_plus_two", signature_name="serving_default"
                ),
                input=examples(1.0),
            ),
            timeout=10,
        )
    assert exc.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "must take exactly one DT_STRING input" in exc.value.details()
    with pytest.raises(grpc.RpcError) as exc:
        hp2.predict.Classify(
            classification_pb2.ClassificationRequest(
                model_spec=model_pb2.ModelSpec(
                    name="half_plus_two", signature_name="classify_x_to_y"
                )
            ),
            timeout=10,
        )
    assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "Input is empty" in exc.value.details()


def test_multi_inference(hp2: Stubs) -> None:
    request = inference_pb2.MultiInferenceRequest(input=examples(2.0))
    for signature, method in (
        ("regress_x_to_y", "tensorflow/serving/regress"),
        ("classify_x_to_y", "tensorflow/serving/classify"),
    ):
        request.tasks.add(
            model_spec=model_pb2.ModelSpec(name="half_plus_two", signature_name=signature),
            method_name=method,
        )
    response = hp2.predict.MultiInference(request, timeout=10)
    assert response.results[0].regression_result.regressions[0].value == pytest.approx(3.0)
    assert response.results[1].classification_result.classifications[0].classes[0].score == (
        pytest.approx(3.0)
    )


def test_get_model_metadata(hp2: Stubs) -> None:
    request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
    request.model_spec.name = "half_plus_two"
    response = hp2.predict.GetModelMetadata(request, timeout=10)
    assert response.model_spec.version.value == 123
    signatures = get_model_metadata_pb2.SignatureDefMap()
    assert response.metadata["signature_def"].Unpack(signatures)
    default = signatures.signature_def["serving_default"]
    assert default.method_name == "tensorflow/serving/predict"
    assert default.inputs["x"].name == "x:0"
    assert default.inputs["x"].dtype == tf.float32.as_datatype_enum
    assert set(signatures.signature_def) >= {
        "classify_x_to_y",
        "regress_x_to_y",
        "regress_x2_to_y3",
    }
    request.metadata_field[:] = ["nope"]
    with pytest.raises(grpc.RpcError) as exc:
        hp2.predict.GetModelMetadata(request, timeout=10)
    assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert exc.value.details() == "Metadata field nope is not supported"


def test_get_model_status(hp2: Stubs) -> None:
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = "half_plus_two"
    response = hp2.model.GetModelStatus(request, timeout=10)
    [status] = response.model_version_status
    assert status.version == 123
    assert status.state == get_model_status_pb2.ModelVersionStatus.AVAILABLE == 30
    assert status.status.error_code == 0
    request.model_spec.version.value = 5
    with pytest.raises(grpc.RpcError) as exc:
        hp2.model.GetModelStatus(request, timeout=10)
    assert exc.value.code() == grpc.StatusCode.NOT_FOUND
    assert exc.value.details() == "Could not find version 5 of model half_plus_two"


def test_failed_version_status_and_reload_config(tmp_path: Path) -> None:
    copy_version(HALF_PLUS_TWO, tmp_path, 1)
    # The TF2 export tightens the classify input from any shape to [-1]: the signature gate
    # would refuse it (tests/e2e/test_rollout.py); this test is about config reloads.
    no_gates = RolloutSettings(gates=False)
    with serving(tmp_path, name="half_plus_two", poll_seconds=600, rollout=no_gates) as server:
        stubs = Stubs(server.port)
        copy_version(HALF_PLUS_TWO_TF2, tmp_path, 2)
        config = model_server_config_pb2.ModelServerConfig()
        entry = config.model_config_list.config.add(
            name="half_plus_two", base_path=str(tmp_path), model_platform="tensorflow"
        )
        response = stubs.model.HandleReloadConfigRequest(
            model_management_pb2.ReloadConfigRequest(config=config), timeout=60
        )
        assert response.status.error_code == 0
        request = predict_request(x=tf.make_tensor_proto(np.float32([1.0])))
        assert stubs.predict.Predict(request, timeout=10).model_spec.version.value == 2
        # Pin version 1 through the config's version policy (rollback).
        entry.model_version_policy.specific.versions.append(1)
        stubs.model.HandleReloadConfigRequest(
            model_management_pb2.ReloadConfigRequest(config=config), timeout=60
        )
        request = predict_request(x=tf.make_tensor_proto(np.float32([[1.0]])))
        assert stubs.predict.Predict(request, timeout=10).model_spec.version.value == 1
        # A broken export: FAILED shows as END with an error status, as in TF Serving.
        shutil.copytree(BAD, tmp_path / "3")
        (tmp_path / "3" / "saved_model.pb").write_bytes(b"not a graph")
        entry.model_version_policy.specific.versions[:] = [3]
        with pytest.raises(grpc.RpcError) as exc:
            stubs.model.HandleReloadConfigRequest(
                model_management_pb2.ReloadConfigRequest(config=config), timeout=60
            )
        assert exc.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        status_request = get_model_status_pb2.GetModelStatusRequest()
        status_request.model_spec.name = "half_plus_two"
        states = {
            s.version: (s.state, s.status.error_code, s.status.error_message)
            for s in stubs.model.GetModelStatus(status_request, timeout=10).model_version_status
        }
        assert states[1][:2] == (30, 0)
        assert states[3][0] == 50 and states[3][1] == 2 and states[3][2]

        # Entries TF Serving would refuse are refused before anything changes.
        def reload_error(config: model_server_config_pb2.ModelServerConfig) -> grpc.RpcError:
            with pytest.raises(grpc.RpcError) as exc:
                stubs.model.HandleReloadConfigRequest(
                    model_management_pb2.ReloadConfigRequest(config=config), timeout=60
                )
            return exc.value

        entry.model_version_policy.specific.versions[:] = [1]
        entry.model_platform = "pytorch"
        err = reload_error(config)
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "model_platform 'pytorch' is not served here" in err.details()
        entry.model_platform, entry.base_path = "tensorflow", ""
        err = reload_error(config)
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "name and base_path are required" in err.details()
        # A new base_path with nothing loadable: the model keeps serving from the old one.
        entry.base_path = str(tmp_path / "empty")
        err = reload_error(config)
        assert err.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "keeps its previous settings" in err.details()
        assert stubs.predict.Predict(request, timeout=10).model_spec.version.value == 1
        stubs.channel.close()


def test_reload_config_adds_and_removes_models(tmp_path: Path) -> None:
    """HandleReloadConfigRequest with a model list serves exactly that list, as TF Serving."""
    copy_version(HALF_PLUS_TWO, tmp_path / "two", 1)
    copy_version(HALF_PLUS_THREE, tmp_path / "three", 7)
    with serving(tmp_path / "two", name="two", poll_seconds=600) as server:
        stubs = Stubs(server.port)

        def apply(*models: tuple[str, Path]) -> None:
            config = model_server_config_pb2.ModelServerConfig()
            for name, root in models:
                config.model_config_list.config.add(name=name, base_path=str(root))
            stubs.model.HandleReloadConfigRequest(
                model_management_pb2.ReloadConfigRequest(config=config), timeout=60
            )

        def y(model: str) -> float:
            request = predict_request(x=tf.make_tensor_proto(np.float32([[2.0]])))
            request.model_spec.name = model
            response = stubs.predict.Predict(request, timeout=10)
            return float(tf.make_ndarray(response.outputs["y"]).item())

        apply(("two", tmp_path / "two"), ("three", tmp_path / "three"))
        assert (y("two"), y("three")) == (3.0, 4.0)  # the new model serves when the RPC returns
        apply(("three", tmp_path / "three"))
        with pytest.raises(grpc.RpcError) as exc:
            y("two")
        assert exc.value.code() == grpc.StatusCode.NOT_FOUND
        assert "model 'two' is not served here (models: 'three')" in exc.value.details()
        assert y("three") == 4.0
        stubs.channel.close()
