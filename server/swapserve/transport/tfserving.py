"""TensorFlow Serving's gRPC API (``tensorflow.serving``) over the same registry.

Existing TF Serving clients (``prediction_service_pb2_grpc.PredictionServiceStub``,
``model_service_pb2_grpc.ModelServiceStub``) work unchanged. Stubs come from the
``tensorflow-serving-api`` package; conversions live in ``swapserve.codecs.tfserving``.
"""

from __future__ import annotations

from collections.abc import Callable

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

from swapserve.codecs import tfserving as codec
from swapserve.errors import FailedPrecondition, InvalidArgument, NotFound
from swapserve.model.manager import Prediction, State
from swapserve.model.registry import ModelRegistry
from swapserve.model.signature import DEFAULT_SIGNATURE
from swapserve.settings import ModelSettings
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


def _version(spec: model_pb2.ModelSpec) -> tuple[int, str]:
    """The requested (version, label); (0, "") for "the served one"."""
    choice = spec.WhichOneof("version_choice")
    if choice == "version_label":
        return 0, spec.version_label
    return (spec.version.value if choice == "version" else 0), ""


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
        version, label = _version(spec)
        result = manager.predict(
            version, spec.signature_name, inputs, list(request.output_filter), label=label
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
        version, label = _version(spec)
        result = manager.predict_examples(
            version, spec.signature_name, examples, method, label=label
        )
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
        version, label = _version(request.tasks[0].model_spec)
        response = inference_pb2.MultiInferenceResponse()
        for task in request.tasks:
            method = {_CLASSIFY: "classify", _REGRESS: "regress"}.get(task.method_name)
            if method is None:
                raise InvalidArgument(
                    f"unsupported method_name {task.method_name!r}; use {_CLASSIFY} or {_REGRESS}"
                )
            result = manager.predict_examples(
                version, task.model_spec.signature_name, examples, method, label=label
            )
            version, label = result.version, ""
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
        version, defs = manager.signature_defs(*_version(request.model_spec))
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
        wanted, label = _version(request.model_spec)
        status = manager.status()
        if label:
            wanted = status.labels.get(label, 0)
            if not wanted:
                raise InvalidArgument(
                    f"Unrecognized servable version label: '{label}' (model '{manager.name}' "
                    f"labels: {sorted(status.labels) or 'none'})"
                )
        versions = [v for v in status.versions if not wanted or v.version == wanted]
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
        """With a ``model_config_list``: serve exactly those models (as TF Serving does: models
        not listed are removed). Without a config: re-read ``--config`` if the server has one;
        then every model rescans its export root now and the answer comes once they serve."""
        check_admin("HandleReloadConfigRequest", context.peer(), self._allow_remote_admin)
        registry = self._registry
        if request.config.WhichOneof("config") is not None:
            if registry.fixed_models:
                raise FailedPrecondition(
                    "with --workers, change the config file and send SIGHUP to the server "
                    "(or send an empty config to rescan every model)"
                )
            registry.apply(codec.model_settings(request.config, _current(registry)))
        elif registry.config_source is not None:
            registry.reload_config()
        for manager in registry:
            registry.reload(manager, 0)
        return model_management_pb2.ReloadConfigResponse(status=status_pb2.StatusProto())


def _current(registry: ModelRegistry) -> Callable[[str], ModelSettings | None]:
    def settings(name: str) -> ModelSettings | None:
        manager = registry.find(name)
        return manager.settings if manager is not None else None

    return settings
