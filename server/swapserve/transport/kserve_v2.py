"""KServe V2 / Open Inference Protocol (``inference.GRPCInferenceService``) over the registry.

Stubs come from ``tritonclient[grpc]`` (the protocol's reference client ships them), so Triton
and KServe clients work unchanged. A model's V2 inputs and outputs are those of its
``serving_default`` signature; a request parameter ``signature_name`` selects another.
"""

from __future__ import annotations

import grpc
from tritonclient.grpc import service_pb2 as pb
from tritonclient.grpc import service_pb2_grpc as pb_grpc

from swapserve import __version__
from swapserve.codecs import kserve_v2 as codec
from swapserve.errors import InvalidArgument
from swapserve.model.manager import ModelManager, State
from swapserve.model.registry import ModelRegistry
from swapserve.model.signature import (
    DEFAULT_SIGNATURE,
    SignatureSpec,
    TensorSpec,
    unknown_signature,
)
from swapserve.transport.admin import check_admin
from swapserve.transport.errors import grpc_errors
from swapserve_client.tensors import TensorError

_PLATFORM = "tensorflow_savedmodel"
_STATE_NAMES = {
    State.AVAILABLE: "READY",
    State.LOADING: "LOADING",
    State.UNLOADING: "UNLOADING",
    State.FAILED: "UNAVAILABLE",
    State.END: "UNAVAILABLE",
    State.START: "UNAVAILABLE",
}


def _version(text: str) -> tuple[int, str]:
    """``model_version`` as (version, label): a number, a version label, or empty (served)."""
    if not text:
        return 0, ""
    if text.isdigit():
        return int(text), ""
    return 0, text


def _signature(
    manager: ModelManager, version: tuple[int, str], name: str
) -> tuple[int, SignatureSpec]:
    number, signatures = manager.signatures(*version)
    sig = signatures.get(name or DEFAULT_SIGNATURE)
    if sig is None:
        raise unknown_signature(name or DEFAULT_SIGNATURE, signatures)
    return number, sig


class KServeV2Servicer(pb_grpc.GRPCInferenceServiceServicer):
    """``inference.GRPCInferenceService``: health, metadata, inference, repository."""

    PROTOCOL = "kserve_v2"

    def __init__(self, registry: ModelRegistry, allow_remote_admin: bool) -> None:
        self._registry = registry
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
        return pb.ServerReadyResponse(ready=self._registry.all_serving())

    @grpc_errors
    def ModelReady(  # noqa: N802
        self, request: pb.ModelReadyRequest, context: grpc.ServicerContext
    ) -> pb.ModelReadyResponse:
        manager = self._registry.find(request.name)
        if manager is None:
            return pb.ModelReadyResponse(ready=False)
        wanted, label = _version(request.version)
        if label:
            wanted = manager.status().labels.get(label, -1)
        loaded = manager.loaded_versions
        return pb.ModelReadyResponse(ready=bool(loaded) and (wanted == 0 or wanted in loaded))

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
        manager = self._registry.get(request.name)
        version, sig = _signature(manager, _version(request.version), "")
        return pb.ModelMetadataResponse(
            name=manager.name,
            versions=[str(version)],
            platform=_PLATFORM,
            inputs=[_metadata(t) for t in sig.inputs.values()],
            outputs=[_metadata(t) for t in sig.outputs.values()],
        )

    @grpc_errors
    def ModelInfer(  # noqa: N802
        self, request: pb.ModelInferRequest, context: grpc.ServicerContext
    ) -> pb.ModelInferResponse:
        manager = self._registry.get(request.model_name)
        raw = list(request.raw_input_contents)
        if raw and len(raw) != len(request.inputs):
            raise InvalidArgument(
                f"raw_input_contents has {len(raw)} entries for {len(request.inputs)} inputs; "
                "use raw contents for every input or for none"
            )
        inputs = {}
        for i, tensor in enumerate(request.inputs):
            if tensor.name in inputs:
                raise InvalidArgument(f"input '{tensor.name}' is given twice")
            try:
                if raw:
                    if tensor.HasField("contents"):
                        raise TensorError("has both contents and raw_input_contents")
                    array = codec.decode_raw(tensor.datatype, list(tensor.shape), raw[i])
                else:
                    array = codec.decode_contents(
                        tensor.datatype, list(tensor.shape), tensor.contents
                    )
            except TensorError as err:
                raise InvalidArgument(f"input '{tensor.name}': {err}") from None
            inputs[tensor.name] = array
        param = request.parameters.get("signature_name")
        signature = param.string_param if param is not None else ""
        requested = [o.name for o in request.outputs]
        version, label = _version(request.model_version)
        result = manager.predict(version, signature, inputs, requested, label=label)
        response = pb.ModelInferResponse(
            model_name=manager.name, model_version=str(result.version), id=request.id
        )
        # Answer in the request's encoding: raw for raw (tritonclient), typed for typed. FP16
        # has no typed field, and encodings may not be mixed, so any FP16 output makes all raw.
        names = requested or sorted(result.outputs)
        datatypes = {n: codec.datatype_of(result.outputs[n]) for n in names}
        use_raw = bool(raw) or "FP16" in datatypes.values()
        for name in names:
            array = result.outputs[name]
            out = response.outputs.add(name=name, datatype=datatypes[name], shape=list(array.shape))
            if use_raw:
                response.raw_output_contents.append(codec.encode_raw(array))
            else:
                codec.encode_contents(array, out.contents)
        return response

    @grpc_errors
    def RepositoryIndex(  # noqa: N802
        self, request: pb.RepositoryIndexRequest, context: grpc.ServicerContext
    ) -> pb.RepositoryIndexResponse:
        response = pb.RepositoryIndexResponse()
        for manager in self._registry:
            status = manager.status()
            serving = status.serving_version
            if request.ready and not serving:
                continue
            entry = response.models.add(name=manager.name)
            current = next((v for v in status.versions if v.serving), None)
            latest = current or (status.versions[0] if status.versions else None)
            if latest is not None:
                entry.version = str(latest.version)
                entry.state = _STATE_NAMES[latest.state]
                entry.reason = latest.error
            else:
                entry.state = "UNAVAILABLE"
                entry.reason = "no version in the export root"
        return response

    @grpc_errors
    def RepositoryModelLoad(  # noqa: N802
        self, request: pb.RepositoryModelLoadRequest, context: grpc.ServicerContext
    ) -> pb.RepositoryModelLoadResponse:
        check_admin("RepositoryModelLoad", context.peer(), self._allow_remote_admin)
        self._registry.reload(self._registry.get(request.model_name), 0)
        return pb.RepositoryModelLoadResponse()

    @grpc_errors
    def RepositoryModelUnload(  # noqa: N802
        self, request: pb.RepositoryModelUnloadRequest, context: grpc.ServicerContext
    ) -> pb.RepositoryModelUnloadResponse:
        check_admin("RepositoryModelUnload", context.peer(), self._allow_remote_admin)
        self._registry.unload(self._registry.get(request.model_name))
        return pb.RepositoryModelUnloadResponse()


def _metadata(spec: TensorSpec) -> pb.ModelMetadataResponse.TensorMetadata:
    return pb.ModelMetadataResponse.TensorMetadata(
        name=spec.name, datatype=codec.datatype_of_spec(spec), shape=codec.shape_of_spec(spec)
    )
