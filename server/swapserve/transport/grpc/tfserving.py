"""TensorFlow Serving's gRPC API (``tensorflow.serving``) over the data plane.

Existing TF Serving clients (``prediction_service_pb2_grpc.PredictionServiceStub``,
``model_service_pb2_grpc.ModelServiceStub``) work unchanged. Messages come from our own
``protos/tensorflow_serving`` (:mod:`swapserve.apis.tfserving`); the servicers are registered by
``swapserve.transport.grpc.services``; conversions live in ``swapserve.codecs.tfserving``.
"""

from __future__ import annotations

import grpc

from swapserve.apis import tfserving as api
from swapserve.codecs import tfserving as codec
from swapserve.config import tfserving as tfserving_config
from swapserve.dataplane.admin import Admin
from swapserve.dataplane.requests import DataPlane
from swapserve.dataplane.types import Prediction
from swapserve.transport.calls import CallPath
from swapserve.transport.grpc.calls import rpc


class TFServingPredictionServicer:
    """``tensorflow.serving.PredictionService``."""

    PROTOCOL = "tfserving"

    def __init__(self, dataplane: DataPlane, calls: CallPath, max_bytes: int = 256 << 20) -> None:
        self._dataplane = dataplane
        self._calls = calls
        self._max_bytes = max_bytes

    @rpc
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

    @rpc
    def Classify(  # noqa: N802
        self, request: api.ClassificationRequest, context: grpc.ServicerContext
    ) -> api.ClassificationResponse:
        spec, result, rows = self._examples(request.model_spec, request.input, "classify")
        return api.ClassificationResponse(
            model_spec=spec, result=codec.classification_result(result.outputs, rows)
        )

    @rpc
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

    @rpc
    def MultiInference(  # noqa: N802
        self, request: api.MultiInferenceRequest, context: grpc.ServicerContext
    ) -> api.MultiInferenceResponse:
        model, tasks = codec.multi_inference_tasks(request)
        examples = codec.serialize_examples(request.input)
        # Every task runs on one version: the first task's answer names it for the others.
        version, label = codec.version_choice(request.tasks[0].model_spec)
        response = api.MultiInferenceResponse()
        for signature, method in tasks:
            result = self._dataplane.predict_examples(
                model,
                signature,
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

    @rpc
    def GetModelMetadata(  # noqa: N802
        self, request: api.GetModelMetadataRequest, context: grpc.ServicerContext
    ) -> api.GetModelMetadataResponse:
        codec.check_metadata_fields(request.metadata_field)
        spec = request.model_spec
        meta = self._dataplane.metadata(spec.name, *codec.version_choice(spec))
        return codec.metadata_response(spec.name, meta.version, meta.signature_defs)


class TFServingModelServicer:
    """``tensorflow.serving.ModelService``: status, and config reload mapped onto Reload."""

    PROTOCOL = "tfserving"

    def __init__(self, dataplane: DataPlane, admin: Admin, calls: CallPath) -> None:
        self._dataplane = dataplane
        self._admin = admin
        self._calls = calls

    @rpc
    def GetModelStatus(  # noqa: N802
        self, request: api.GetModelStatusRequest, context: grpc.ServicerContext
    ) -> api.GetModelStatusResponse:
        spec = request.model_spec
        versions = self._dataplane.version_status(spec.name, *codec.version_choice(spec))
        return codec.status_response(versions)

    @rpc
    def HandleReloadConfigRequest(  # noqa: N802
        self, request: api.ReloadConfigRequest, context: grpc.ServicerContext
    ) -> api.ReloadConfigResponse:
        """With a ``model_config_list``: serve exactly those models (as TF Serving does: models
        not listed are removed). Without a config: re-read ``--config`` if the server has one;
        then every model rescans its export root now and the answer comes once they serve."""
        config = request.config
        if config.WhichOneof("config") is not None:
            self._admin.reload_config(
                lambda current: tfserving_config.model_settings(config, current)
            )
        else:
            self._admin.reload_config()
        return api.ReloadConfigResponse(status=api.StatusProto())
