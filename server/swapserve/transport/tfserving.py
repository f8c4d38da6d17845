"""TensorFlow Serving's gRPC API (``tensorflow.serving``) over the same registry.

Existing TF Serving clients (``prediction_service_pb2_grpc.PredictionServiceStub``,
``model_service_pb2_grpc.ModelServiceStub``) work unchanged. Stubs come from the
``tensorflow-serving-api`` package; conversions live in ``swapserve.codecs.tfserving``.
"""

from __future__ import annotations

from pathlib import Path

import grpc
from google.protobuf import wrappers_pb2
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
    status_pb2,
)
from tensorflow_serving.config import model_server_config_pb2

from swapserve.codecs import tfserving as codec
from swapserve.errors import InvalidArgument, NotFound
from swapserve.model.manager import ModelManager, Prediction, State
from swapserve.model.registry import ModelRegistry
from swapserve.model.signature import DEFAULT_SIGNATURE
from swapserve.transport.admin import check_admin
from swapserve.transport.errors import grpc_errors

_STATES = {  # our states -> TF Serving's ModelVersionStatus.State (FAILED is END + error)
    State.START: 10,
    State.LOADING: 20,
    State.AVAILABLE: 30,
    State.UNLOADING: 40,
    State.END: 50,
    State.FAILED: 50,
}
_UNKNOWN = 2  # tensorflow.error.Code.UNKNOWN
_CLASSIFY = "tensorflow/serving/classify"
_REGRESS = "tensorflow/serving/regress"


def _version(spec: model_pb2.ModelSpec) -> int:
    """The requested version; 0 for "the served one"."""
    choice = spec.WhichOneof("version_choice")
    if choice == "version_label":
        raise InvalidArgument(
            f"Unrecognized servable version label: {spec.version_label!r} (model "
            f"'{spec.name}' has no version labels)"
        )
    return spec.version.value if choice == "version" else 0


def _spec(name: str, version: int, signature: str) -> model_pb2.ModelSpec:
    return model_pb2.ModelSpec(
        name=name, version=wrappers_pb2.Int64Value(value=version), signature_name=signature
    )


class TFServingPredictionServicer(prediction_service_pb2_grpc.PredictionServiceServicer):
    """``tensorflow.serving.PredictionService``."""

    PROTOCOL = "tfserving"

    def __init__(self, registry: ModelRegistry, max_bytes: int = 256 << 20) -> None:
        self._registry = registry
        self._max_bytes = max_bytes

    @grpc_errors
    def Predict(  # noqa: N802
        self, request: predict_pb2.PredictRequest, context: grpc.ServicerContext
    ) -> predict_pb2.PredictResponse:
        spec = request.model_spec
        manager = self._registry.get(spec.name)
        inputs = codec.decode_inputs(request.inputs, self._max_bytes)
        result = manager.predict(
            _version(spec), spec.signature_name, inputs, list(request.output_filter)
        )
        response = predict_pb2.PredictResponse(
            model_spec=_spec(manager.name, result.version, result.signature)
        )
        for name, array in result.outputs.items():
            codec.encode_tensor(array, response.outputs[name])
        return response

    @grpc_errors
    def Classify(  # noqa: N802
        self, request: classification_pb2.ClassificationRequest, context: grpc.ServicerContext
    ) -> classification_pb2.ClassificationResponse:
        spec, result, rows = self._examples(request.model_spec, request.input, "classify")
        return classification_pb2.ClassificationResponse(
            model_spec=spec, result=codec.classification_result(result.outputs, rows)
        )

    @grpc_errors
    def Regress(  # noqa: N802
        self, request: regression_pb2.RegressionRequest, context: grpc.ServicerContext
    ) -> regression_pb2.RegressionResponse:
        spec, result, rows = self._examples(request.model_spec, request.input, "regress")
        return regression_pb2.RegressionResponse(
            model_spec=spec, result=codec.regression_result(result.outputs, rows)
        )

    def _examples(
        self, spec: model_pb2.ModelSpec, inputs: input_pb2.Input, method: str
    ) -> tuple[model_pb2.ModelSpec, Prediction, int]:
        """Runs a classify/regress request; returns the answering spec, outputs and row count."""
        manager = self._registry.get(spec.name)
        examples = codec.serialize_examples(inputs)
        result = manager.predict_examples(_version(spec), spec.signature_name, examples, method)
        return _spec(manager.name, result.version, result.signature), result, len(examples)

    @grpc_errors
    def MultiInference(  # noqa: N802
        self, request: inference_pb2.MultiInferenceRequest, context: grpc.ServicerContext
    ) -> inference_pb2.MultiInferenceResponse:
        if not request.tasks:
            raise InvalidArgument("MultiInferenceRequest has no tasks")
        names = {t.model_spec.name for t in request.tasks}
        if len(names) != 1:
            raise InvalidArgument(f"all tasks must use the same model, got {sorted(names)}")
        signatures = [t.model_spec.signature_name or DEFAULT_SIGNATURE for t in request.tasks]
        if len(set(signatures)) != len(signatures):
            raise InvalidArgument("tasks must use distinct signatures")
        manager = self._registry.get(names.pop())
        examples = codec.serialize_examples(request.input)
        # Every task runs on one version: the first task's answer pins it for the others.
        version = _version(request.tasks[0].model_spec)
        response = inference_pb2.MultiInferenceResponse()
        for task in request.tasks:
            method = {_CLASSIFY: "classify", _REGRESS: "regress"}.get(task.method_name)
            if method is None:
                raise InvalidArgument(
                    f"unsupported method_name {task.method_name!r}; use {_CLASSIFY} or {_REGRESS}"
                )
            result = manager.predict_examples(
                version, task.model_spec.signature_name, examples, method
            )
            version = result.version
            entry = response.results.add(
                model_spec=_spec(manager.name, result.version, result.signature)
            )
            if method == "classify":
                entry.classification_result.CopyFrom(
                    codec.classification_result(result.outputs, len(examples))
                )
            else:
                entry.regression_result.CopyFrom(
                    codec.regression_result(result.outputs, len(examples))
                )
        return response

    @grpc_errors
    def GetModelMetadata(  # noqa: N802
        self, request: get_model_metadata_pb2.GetModelMetadataRequest, context: grpc.ServicerContext
    ) -> get_model_metadata_pb2.GetModelMetadataResponse:
        if not request.metadata_field:
            raise InvalidArgument(
                "GetModelMetadataRequest must specify at least one metadata_field"
            )
        for field in request.metadata_field:
            if field != "signature_def":
                raise InvalidArgument(f"Metadata field {field} is not supported")
        manager = self._registry.get(request.model_spec.name)
        version, defs = manager.signature_defs(_version(request.model_spec))
        response = get_model_metadata_pb2.GetModelMetadataResponse(
            model_spec=_spec(manager.name, version, "")
        )
        signature_map = get_model_metadata_pb2.SignatureDefMap()
        for key, sig in defs.items():
            signature_map.signature_def[key].CopyFrom(sig)
        response.metadata["signature_def"].Pack(signature_map)
        return response


class TFServingModelServicer(model_service_pb2_grpc.ModelServiceServicer):
    """``tensorflow.serving.ModelService``: status, and config reload mapped onto Reload."""

    PROTOCOL = "tfserving"

    def __init__(self, registry: ModelRegistry, allow_remote_admin: bool) -> None:
        self._registry = registry
        self._allow_remote_admin = allow_remote_admin

    @grpc_errors
    def GetModelStatus(  # noqa: N802
        self, request: get_model_status_pb2.GetModelStatusRequest, context: grpc.ServicerContext
    ) -> get_model_status_pb2.GetModelStatusResponse:
        manager = self._registry.get(request.model_spec.name)
        wanted = _version(request.model_spec)
        versions = [v for v in manager.status().versions if not wanted or v.version == wanted]
        if not versions:
            if wanted:
                raise NotFound(f"Could not find version {wanted} of model {manager.name}")
            raise NotFound(f"Could not find any versions of model {manager.name}")
        return get_model_status_pb2.GetModelStatusResponse(
            model_version_status=[
                get_model_status_pb2.ModelVersionStatus(
                    version=v.version,
                    state=_STATES[v.state],
                    status=status_pb2.StatusProto(
                        error_code=_UNKNOWN if v.state is State.FAILED else 0,
                        error_message=v.error,
                    ),
                )
                for v in versions
            ]
        )

    @grpc_errors
    def HandleReloadConfigRequest(  # noqa: N802
        self, request: model_management_pb2.ReloadConfigRequest, context: grpc.ServicerContext
    ) -> model_management_pb2.ReloadConfigResponse:
        check_admin("HandleReloadConfigRequest", context.peer(), self._allow_remote_admin)
        plan = self._plan(request.config)
        for manager, version in plan:
            self._registry.reload(manager, version)
        return model_management_pb2.ReloadConfigResponse(status=status_pb2.StatusProto())

    def _plan(
        self, config: model_server_config_pb2.ModelServerConfig
    ) -> list[tuple[ModelManager, int]]:
        """Checks the whole config before reloading anything; returns (model, version) pairs."""
        if config.WhichOneof("config") is None:
            return [(m, 0) for m in self._registry]  # no config: reload every model
        if config.WhichOneof("config") != "model_config_list":
            raise InvalidArgument("only model_config_list configs are supported")
        plan = []
        for model in config.model_config_list.config:
            manager = self._registry.get(model.name)
            root = manager.settings.export_root
            if model.base_path and Path(model.base_path).resolve() != root.resolve():
                raise InvalidArgument(
                    f"model '{model.name}' is served from {root}; changing its base_path to "
                    f"{model.base_path} is not supported"
                )
            plan.append((manager, _pinned_version(model)))
        return plan


def _pinned_version(model: model_server_config_pb2.ModelConfig) -> int:
    policy = model.model_version_policy
    choice = policy.WhichOneof("policy_choice")
    if choice is None or (choice == "latest" and policy.latest.num_versions <= 1):
        return 0
    if choice == "specific" and len(policy.specific.versions) == 1:
        return int(policy.specific.versions[0])
    raise InvalidArgument(
        f"model '{model.name}': version policy {choice} with several versions is not supported; "
        "use latest (1 version) or specific with one version"
    )
