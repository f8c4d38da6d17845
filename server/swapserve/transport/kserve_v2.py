"""KServe V2 / Open Inference Protocol (``inference.GRPCInferenceService``) over the data plane.

Messages come from our own ``protos/inference`` (the protocol's published names and numbers,
:mod:`swapserve.apis.kserve_v2`), so Triton and KServe clients work unchanged; the servicer is
registered by ``swapserve.transport.services``. A model's V2 inputs and outputs are those of its
``serving_default`` signature; a request parameter ``signature_name`` selects another.
Conversions live in ``swapserve.codecs.kserve_v2``.
"""

from __future__ import annotations

import grpc
from google.protobuf import json_format

from swapserve import __version__
from swapserve.apis import kserve_v2 as pb
from swapserve.codecs import kserve_v2 as codec
from swapserve.codecs import kserve_v2_stats as stats_codec
from swapserve.dataplane import DataPlane
from swapserve.transport.admin import check_admin
from swapserve.transport.errors import grpc_errors

_PLATFORM = stats_codec.PLATFORM


class KServeV2Servicer:
    """``inference.GRPCInferenceService``: health, metadata, inference, repository."""

    PROTOCOL = "kserve_v2"

    def __init__(self, dataplane: DataPlane, allow_remote_admin: bool) -> None:
        self._dataplane = dataplane
        self._allow_remote_admin = allow_remote_admin

    @grpc_errors
    def ServerLive(  # noqa: N802
        self, request: pb.ServerLiveRequest, context: grpc.ServicerContext
    ) -> pb.ServerLiveResponse:
        return pb.ServerLiveResponse(live=True)

    @grpc_errors
    def ServerReady(  # noqa: N802
        self, request: pb.ServerReadyRequest, context: grpc.ServicerContext
    ) -> pb.ServerReadyResponse:
        return pb.ServerReadyResponse(ready=self._dataplane.server_ready())

    @grpc_errors
    def ModelReady(  # noqa: N802
        self, request: pb.ModelReadyRequest, context: grpc.ServicerContext
    ) -> pb.ModelReadyResponse:
        version, label = codec.parse_version(request.version)
        return pb.ModelReadyResponse(
            ready=self._dataplane.model_ready(request.name, version, label)
        )

    @grpc_errors
    def ServerMetadata(  # noqa: N802
        self, request: pb.ServerMetadataRequest, context: grpc.ServicerContext
    ) -> pb.ServerMetadataResponse:
        return pb.ServerMetadataResponse(
            name="swapserve", version=__version__, extensions=["model_repository"]
        )

    @grpc_errors
    def ModelMetadata(  # noqa: N802
        self, request: pb.ModelMetadataRequest, context: grpc.ServicerContext
    ) -> pb.ModelMetadataResponse:
        version, label = codec.parse_version(request.version)
        number, sig = self._dataplane.signature(request.name, "", version, label)
        return pb.ModelMetadataResponse(
            name=request.name,
            versions=[str(number)],
            platform=_PLATFORM,
            inputs=[codec.tensor_metadata(t) for t in sig.inputs.values()],
            outputs=[codec.tensor_metadata(t) for t in sig.outputs.values()],
        )

    @grpc_errors
    def ModelInfer(  # noqa: N802
        self, request: pb.ModelInferRequest, context: grpc.ServicerContext
    ) -> pb.ModelInferResponse:
        call = codec.decode_infer_request(request)
        result = self._dataplane.predict(
            request.model_name,
            call.signature,
            call.inputs,
            version=call.version,
            label=call.label,
            output_filter=call.outputs,
        )
        return codec.encode_infer_response(
            request.model_name, request.id, call, result.outputs, result.version
        )

    @grpc_errors
    def ModelStatistics(  # noqa: N802
        self, request: pb.ModelStatisticsRequest, context: grpc.ServicerContext
    ) -> pb.ModelStatisticsResponse:
        version, label = codec.parse_version(request.version)
        entries = self._dataplane.statistics(request.name, version, label)
        return json_format.ParseDict(stats_codec.statistics(entries), pb.ModelStatisticsResponse())

    @grpc_errors
    def ModelConfig(  # noqa: N802
        self, request: pb.ModelConfigRequest, context: grpc.ServicerContext
    ) -> pb.ModelConfigResponse:
        version, label = codec.parse_version(request.version)
        info = self._dataplane.model_config(request.name, version, label)
        response = pb.ModelConfigResponse()
        json_format.ParseDict(stats_codec.model_config(info), response.config)
        return response

    @grpc_errors
    def RepositoryIndex(  # noqa: N802
        self, request: pb.RepositoryIndexRequest, context: grpc.ServicerContext
    ) -> pb.RepositoryIndexResponse:
        response = pb.RepositoryIndexResponse()
        for entry in self._dataplane.index(ready_only=request.ready):
            codec.index_entry(entry, response.models.add())
        return response

    @grpc_errors
    def RepositoryModelLoad(  # noqa: N802
        self, request: pb.RepositoryModelLoadRequest, context: grpc.ServicerContext
    ) -> pb.RepositoryModelLoadResponse:
        check_admin("RepositoryModelLoad", context.peer(), self._allow_remote_admin)
        self._dataplane.reload(request.model_name, 0)
        return pb.RepositoryModelLoadResponse()

    @grpc_errors
    def RepositoryModelUnload(  # noqa: N802
        self, request: pb.RepositoryModelUnloadRequest, context: grpc.ServicerContext
    ) -> pb.RepositoryModelUnloadResponse:
        check_admin("RepositoryModelUnload", context.peer(), self._allow_remote_admin)
        self._dataplane.unload(request.model_name)
        return pb.RepositoryModelUnloadResponse()
