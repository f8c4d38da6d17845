"""KServe V2 / Open Inference Protocol (``inference.GRPCInferenceService``) over the data plane.

Messages come from our own ``protos/inference`` (the protocol's published names and numbers,
:mod:`swapserve.apis.kserve_v2`), so Triton and KServe clients work unchanged; the servicer is
registered by ``swapserve.transport.grpc.services``. A model's V2 inputs and outputs are those
of its
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
from swapserve.dataplane import triton_extensions as ext
from swapserve.dataplane.admin import Admin
from swapserve.dataplane.requests import DataPlane
from swapserve.transport.calls import CallPath
from swapserve.transport.grpc.calls import rpc
from swapserve.transport.grpc.triton_extensions import TritonExtensions

_PLATFORM = stats_codec.PLATFORM


class KServeV2Servicer(TritonExtensions):
    """``inference.GRPCInferenceService``: health, metadata, inference, repository, and Triton's
    extensions (``TritonExtensions``)."""

    PROTOCOL = "kserve_v2"

    def __init__(
        self, dataplane: DataPlane, admin: Admin, calls: CallPath, tracing: bool = False
    ) -> None:
        self._dataplane = dataplane
        self._admin = admin
        self._calls = calls
        self._tracing = tracing

    @rpc
    def ServerLive(  # noqa: N802
        self, request: pb.ServerLiveRequest, context: grpc.ServicerContext
    ) -> pb.ServerLiveResponse:
        return pb.ServerLiveResponse(live=True)

    @rpc
    def ServerReady(  # noqa: N802
        self, request: pb.ServerReadyRequest, context: grpc.ServicerContext
    ) -> pb.ServerReadyResponse:
        return pb.ServerReadyResponse(ready=self._dataplane.server_ready())

    @rpc
    def ModelReady(  # noqa: N802
        self, request: pb.ModelReadyRequest, context: grpc.ServicerContext
    ) -> pb.ModelReadyResponse:
        version, label = codec.parse_version(request.version)
        return pb.ModelReadyResponse(
            ready=self._dataplane.model_ready(request.name, version, label)
        )

    @rpc
    def ServerMetadata(  # noqa: N802
        self, request: pb.ServerMetadataRequest, context: grpc.ServicerContext
    ) -> pb.ServerMetadataResponse:
        return pb.ServerMetadataResponse(
            name="swapserve", version=__version__, extensions=ext.extensions(self._tracing)
        )

    @rpc
    def ModelMetadata(  # noqa: N802
        self, request: pb.ModelMetadataRequest, context: grpc.ServicerContext
    ) -> pb.ModelMetadataResponse:
        version, label = codec.parse_version(request.version)
        _, sig = self._dataplane.signature(request.name, "", version, label)
        return pb.ModelMetadataResponse(
            name=request.name,
            versions=[str(v) for v in self._dataplane.loaded_versions(request.name)],
            platform=_PLATFORM,
            inputs=[codec.tensor_metadata(t) for t in sig.inputs.values()],
            outputs=[codec.tensor_metadata(t) for t in sig.outputs.values()],
        )

    @rpc
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

    @rpc
    def ModelStatistics(  # noqa: N802
        self, request: pb.ModelStatisticsRequest, context: grpc.ServicerContext
    ) -> pb.ModelStatisticsResponse:
        version, label = codec.parse_version(request.version)
        entries = self._dataplane.statistics(request.name, version, label)
        return json_format.ParseDict(stats_codec.statistics(entries), pb.ModelStatisticsResponse())

    @rpc
    def ModelConfig(  # noqa: N802
        self, request: pb.ModelConfigRequest, context: grpc.ServicerContext
    ) -> pb.ModelConfigResponse:
        version, label = codec.parse_version(request.version)
        info = self._dataplane.model_config(request.name, version, label)
        response = pb.ModelConfigResponse()
        json_format.ParseDict(stats_codec.model_config(info), response.config)
        return response

    @rpc
    def RepositoryIndex(  # noqa: N802
        self, request: pb.RepositoryIndexRequest, context: grpc.ServicerContext
    ) -> pb.RepositoryIndexResponse:
        response = pb.RepositoryIndexResponse()
        for entry in self._dataplane.index(ready_only=request.ready):
            codec.index_entry(entry, response.models.add())
        return response

    @rpc
    def RepositoryModelLoad(  # noqa: N802
        self, request: pb.RepositoryModelLoadRequest, context: grpc.ServicerContext
    ) -> pb.RepositoryModelLoadResponse:
        self._admin.reload(request.model_name, 0, codec.load_force(request.parameters))
        return pb.RepositoryModelLoadResponse()

    @rpc
    def RepositoryModelUnload(  # noqa: N802
        self, request: pb.RepositoryModelUnloadRequest, context: grpc.ServicerContext
    ) -> pb.RepositoryModelUnloadResponse:
        self._admin.unload(request.model_name)
        return pb.RepositoryModelUnloadResponse()
