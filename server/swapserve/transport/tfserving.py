"""TensorFlow Serving's gRPC API (``tensorflow.serving``) over the data plane.

Existing TF Serving clients (``prediction_service_pb2_grpc.PredictionServiceStub``,
``model_service_pb2_grpc.ModelServiceStub``) work unchanged. Messages come from our own
``protos/tensorflow_serving`` (:mod:`swapserve.apis.tfserving`); the servicers are registered by
``swapserve.transport.services``; conversions live in ``swapserve.codecs.tfserving``.
"""

from __future__ import annotations

import grpc

from swapserve import tfserving_config
from swapserve.apis import tfserving as api
from swapserve.codecs import tfserving as codec
from swapserve.dataplane import DataPlane, Prediction
from swapserve.errors import InvalidArgument
from swapserve.model.signature import DEFAULT_SIGNATURE
from swapserve.transport.admin import check_admin
from swapserve.transport.errors import grpc_errors

_CLASSIFY = "tensorflow/serving/classify"
_REGRESS = "tensorflow/serving/regress"
_METHODS = {_CLASSIFY: "classify", _REGRESS: "regress"}


class TFServingPredictionServicer:
    """``tensorflow.serving.PredictionService``."""

    PROTOCOL = "tfserving"

    def __init__(self, dataplane: DataPlane, max_bytes: int = 256 << 20) -> None:
        self._dataplane = dataplane
        self._max_bytes = max_bytes

    @grpc_errors
    def Predict(  # noqa: N802
        self, request: api.PredictRequest, context: grpc.ServicerContext
    ) -> api.PredictResponse:
        spec = request.model_spec
        version, label = codec.version_choice(spec)
        result = self._dataplane.predict(
            spec.name,
            spec.signature_name,
            codec.decode_inputs(request.inputs, self._max_bytes),
            version=version,
            label=label,
            output_filter=list(request.output_filter),
        )
        response = api.PredictResponse(
            model_spec=codec.model_spec(spec.name, result.version, result.signature)
        )
        for name, array in result.outputs.items():
            codec.encode_tensor(array, response.outputs[name])
        return response

    @grpc_errors
    def Classify(  # noqa: N802
        self, request: api.ClassificationRequest, context: grpc.ServicerContext
    ) -> api.ClassificationResponse:
        spec, result, rows = self._examples(request.model_spec, request.input, "classify")
        return api.ClassificationResponse(
            model_spec=spec, result=codec.classification_result(result.outputs, rows)
        )

    @grpc_errors
    def Regress(  # noqa: N802
        self, request: api.RegressionRequest, context: grpc.ServicerContext
    ) -> api.RegressionResponse:
        spec, result, rows = self._examples(request.model_spec, request.input, "regress")
        return api.RegressionResponse(
            model_spec=spec, result=codec.regression_result(result.outputs, rows)
        )

    def _examples(
        self, spec: api.ModelSpec, inputs: api.Input, method: str
    ) -> tuple[api.ModelSpec, Prediction, int]:
        """Runs a classify/regress request; returns the answering spec, outputs and row count."""
        examples = codec.serialize_examples(inputs)
        version, label = codec.version_choice(spec)
        result = self._dataplane.predict_examples(
            spec.name, spec.signature_name, examples, method, version=version, label=label
        )
        return codec.model_spec(spec.name, result.version, result.signature), result, len(examples)

    @grpc_errors
    def MultiInference(  # noqa: N802
        self, request: api.MultiInferenceRequest, context: grpc.ServicerContext
    ) -> api.MultiInferenceResponse:
        if not request.tasks:
            raise InvalidArgument("MultiInferenceRequest has no tasks")
        names = {t.model_spec.name for t in request.tasks}
        if len(names) != 1:
            raise InvalidArgument(f"all tasks must use the same model, got {sorted(names)}")
        signatures = [t.model_spec.signature_name or DEFAULT_SIGNATURE for t in request.tasks]
        if len(set(signatures)) != len(signatures):
            raise InvalidArgument("tasks must use distinct signatures")
        for task in request.tasks:
            if task.method_name not in _METHODS:
                raise InvalidArgument(
                    f"unsupported method_name {task.method_name!r}; use {_CLASSIFY} or {_REGRESS}"
                )
        model = names.pop()
        examples = codec.serialize_examples(request.input)
        # Every task runs on one version: the first task's answer names it for the others.
        version, label = codec.version_choice(request.tasks[0].model_spec)
        response = api.MultiInferenceResponse()
        for task in request.tasks:
            method = _METHODS[task.method_name]
            result = self._dataplane.predict_examples(
                model,
                task.model_spec.signature_name,
                examples,
                method,
                version=version,
                label=label,
            )
            version, label = result.version, ""
            entry = response.results.add(
                model_spec=codec.model_spec(model, result.version, result.signature)
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
        self, request: api.GetModelMetadataRequest, context: grpc.ServicerContext
    ) -> api.GetModelMetadataResponse:
        if not request.metadata_field:
            raise InvalidArgument(
                "GetModelMetadataRequest must specify at least one metadata_field"
            )
        for field in request.metadata_field:
            if field != "signature_def":
                raise InvalidArgument(f"Metadata field {field} is not supported")
        spec = request.model_spec
        meta = self._dataplane.metadata(spec.name, *codec.version_choice(spec))
        return codec.metadata_response(spec.name, meta.version, meta.signature_defs)


class TFServingModelServicer:
    """``tensorflow.serving.ModelService``: status, and config reload mapped onto Reload."""

    PROTOCOL = "tfserving"

    def __init__(self, dataplane: DataPlane, allow_remote_admin: bool) -> None:
        self._dataplane = dataplane
        self._allow_remote_admin = allow_remote_admin

    @grpc_errors
    def GetModelStatus(  # noqa: N802
        self, request: api.GetModelStatusRequest, context: grpc.ServicerContext
    ) -> api.GetModelStatusResponse:
        spec = request.model_spec
        versions = self._dataplane.version_status(spec.name, *codec.version_choice(spec))
        return codec.status_response(versions)

    @grpc_errors
    def HandleReloadConfigRequest(  # noqa: N802
        self, request: api.ReloadConfigRequest, context: grpc.ServicerContext
    ) -> api.ReloadConfigResponse:
        """With a ``model_config_list``: serve exactly those models (as TF Serving does: models
        not listed are removed). Without a config: re-read ``--config`` if the server has one;
        then every model rescans its export root now and the answer comes once they serve."""
        check_admin("HandleReloadConfigRequest", context.peer(), self._allow_remote_admin)
        config = request.config
        if config.WhichOneof("config") is not None:
            self._dataplane.reload_config(
                lambda current: tfserving_config.model_settings(config, current)
            )
        else:
            self._dataplane.reload_config()
        return api.ReloadConfigResponse(status=api.StatusProto())
