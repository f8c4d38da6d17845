"""The swapserve.v1 PredictionService: decode, call the data plane, encode. Nothing else."""

from __future__ import annotations

import grpc

from swapserve.codecs import swapserve_v1 as codec
from swapserve.dataplane.admin import Admin
from swapserve.dataplane.requests import DataPlane
from swapserve.transport.calls import CallPath
from swapserve.transport.grpc.calls import rpc
from swapserve_client import tensors
from swapserve_client._proto.swapserve.v1 import prediction_pb2 as pb
from swapserve_client._proto.swapserve.v1 import prediction_pb2_grpc as pb_grpc


class PredictionServicer(pb_grpc.PredictionServiceServicer):
    """Thin adapter from the swapserve.v1 API to the data plane."""

    PROTOCOL = "swapserve"

    def __init__(self, dataplane: DataPlane, admin: Admin, calls: CallPath) -> None:
        self._dataplane = dataplane
        self._admin = admin
        self._calls = calls

    @rpc
    def Predict(  # noqa: N802 (gRPC method name)
        self, request: pb.PredictRequest, context: grpc.ServicerContext
    ) -> pb.PredictResponse:
        result = self._dataplane.predict(
            request.model_name,
            request.signature_name,
            tensors.decode_map(request.inputs, what="input"),
            version=request.version,
            label=request.version_label,
            output_filter=list(request.output_filter),
        )
        response = pb.PredictResponse(
            model_name=request.model_name, version=result.version, signature_name=result.signature
        )
        tensors.encode_map(result.outputs, response.outputs)
        return response

    @rpc
    def Reload(  # noqa: N802
        self, request: pb.ReloadRequest, context: grpc.ServicerContext
    ) -> pb.ReloadResponse:
        outcome = self._admin.reload(request.model_name, request.version, request.force)
        return pb.ReloadResponse(
            model_name=request.model_name,
            previous_version=outcome.previous_version,
            version=outcome.version,
            load_seconds=outcome.load_seconds,
            pinned=outcome.pinned,
            canary_version=outcome.canary_version,
            canary_percent=outcome.canary_percent,
        )

    @rpc
    def GetModelStatus(  # noqa: N802
        self, request: pb.GetModelStatusRequest, context: grpc.ServicerContext
    ) -> pb.GetModelStatusResponse:
        status = self._dataplane.status(request.model_name)
        return codec.status_response(request.model_name, status)

    @rpc
    def GetModelMetadata(  # noqa: N802
        self, request: pb.GetModelMetadataRequest, context: grpc.ServicerContext
    ) -> pb.GetModelMetadataResponse:
        meta = self._dataplane.metadata(request.model_name, request.version, request.version_label)
        return codec.metadata_response(request.model_name, meta.version, meta.signatures)
