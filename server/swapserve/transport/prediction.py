"""The swapserve.v1 PredictionService: decode, call the registry, encode. Nothing else."""

from __future__ import annotations

import grpc

from swapserve.model.registry import ModelRegistry
from swapserve.model.signature import TensorSpec
from swapserve.transport.admin import check_admin
from swapserve.transport.errors import grpc_errors
from swapserve_client import tensors
from swapserve_client._proto.swapserve.v1 import prediction_pb2 as pb
from swapserve_client._proto.swapserve.v1 import prediction_pb2_grpc as pb_grpc


class PredictionServicer(pb_grpc.PredictionServiceServicer):
    """Thin adapter from the swapserve.v1 API to ``ModelRegistry``."""

    PROTOCOL = "swapserve"

    def __init__(self, registry: ModelRegistry, allow_remote_admin: bool) -> None:
        self._registry = registry
        self._allow_remote_admin = allow_remote_admin

    @grpc_errors
    def Predict(  # noqa: N802 (gRPC method name)
        self, request: pb.PredictRequest, context: grpc.ServicerContext
    ) -> pb.PredictResponse:
        manager = self._registry.get(request.model_name)
        inputs = tensors.decode_map(request.inputs, what="input")
        result = manager.predict(
            request.version,
            request.signature_name,
            inputs,
            list(request.output_filter),
            label=request.version_label,
        )
        response = pb.PredictResponse(
            model_name=manager.name, version=result.version, signature_name=result.signature
        )
        tensors.encode_map(result.outputs, response.outputs)
        return response

    @grpc_errors
    def Reload(  # noqa: N802
        self, request: pb.ReloadRequest, context: grpc.ServicerContext
    ) -> pb.ReloadResponse:
        check_admin("Reload", context.peer(), self._allow_remote_admin)
        manager = self._registry.get(request.model_name)
        outcome = self._registry.reload(manager, request.version)
        return pb.ReloadResponse(
            model_name=manager.name,
            previous_version=outcome.previous_version,
            version=outcome.version,
            load_seconds=outcome.load_seconds,
            pinned=outcome.pinned,
        )

    @grpc_errors
    def GetModelStatus(  # noqa: N802
        self, request: pb.GetModelStatusRequest, context: grpc.ServicerContext
    ) -> pb.GetModelStatusResponse:
        manager = self._registry.get(request.model_name)
        status = manager.status()
        return pb.GetModelStatusResponse(
            model_name=manager.name,
            serving_version=status.serving_version,
            pinned_version=status.pinned_version,
            versions=[
                pb.ModelVersionStatus(
                    version=v.version,
                    state=int(v.state),  # type: ignore[arg-type]
                    error_message=v.error,
                    serving=v.serving,
                    load_seconds=v.load_seconds,
                    updated_unix=v.updated_unix,
                    labels=v.labels,
                )
                for v in status.versions
            ],
            version_labels=status.labels,
            storage_error=status.storage_error,
        )

    @grpc_errors
    def GetModelMetadata(  # noqa: N802
        self, request: pb.GetModelMetadataRequest, context: grpc.ServicerContext
    ) -> pb.GetModelMetadataResponse:
        manager = self._registry.get(request.model_name)
        version, signatures = manager.signatures(request.version, request.version_label)
        return pb.GetModelMetadataResponse(
            model_name=manager.name,
            version=version,
            signatures=[
                pb.SignatureMetadata(
                    name=sig.name,
                    method_name=sig.method_name,
                    inputs=[_tensor_info(t) for t in sig.inputs.values()],
                    outputs=[_tensor_info(t) for t in sig.outputs.values()],
                )
                for sig in signatures.values()
            ],
        )


def _tensor_info(spec: TensorSpec) -> pb.TensorInfo:
    return pb.TensorInfo(
        name=spec.name,
        dtype=spec.dtype,  # type: ignore[arg-type]
        shape=[] if spec.shape is None else list(spec.shape),
        unknown_rank=spec.shape is None,
    )
