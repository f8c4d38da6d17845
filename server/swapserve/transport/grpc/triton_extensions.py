"""Triton's gRPC extensions of ``inference.GRPCInferenceService`` beyond the Open Inference
Protocol, as tritonclient.grpc calls them: log settings (onto our logging), shared memory and
trace settings (answered with the reason, ``swapserve.dataplane.triton_extensions``). Mixed into
``KServeV2Servicer``; each method only decodes, calls and encodes.

``LogSettings`` reads and writes in one RPC (an empty request reads), so it is an admin call.
"""

from __future__ import annotations

from typing import Any

import grpc

from swapserve.apis import kserve_v2 as pb
from swapserve.dataplane import triton_extensions as ext
from swapserve.observability import log_settings
from swapserve.transport.grpc.calls import rpc


class TritonExtensions:
    """The extension RPCs; the servicer provides ``PROTOCOL``, ``_calls`` and ``_tracing``."""

    _tracing: bool

    @rpc
    def LogSettings(  # noqa: N802
        self, request: pb.LogSettingsRequest, context: grpc.ServicerContext
    ) -> pb.LogSettingsResponse:
        body = {key: _value(value) for key, value in request.settings.items()}
        settings = log_settings.update(body) if body else log_settings.current()
        response = pb.LogSettingsResponse()
        for key, value in settings.items():
            entry = response.settings[key]
            if isinstance(value, bool):
                entry.bool_param = value
            elif isinstance(value, int):
                entry.uint32_param = value
            else:
                entry.string_param = str(value)
        return response

    @rpc
    def SystemSharedMemoryStatus(  # noqa: N802
        self, request: pb.SystemSharedMemoryStatusRequest, context: grpc.ServicerContext
    ) -> pb.SystemSharedMemoryStatusResponse:
        ext.memory_status(request.name)
        return pb.SystemSharedMemoryStatusResponse()

    @rpc
    def SystemSharedMemoryRegister(  # noqa: N802
        self, request: pb.SystemSharedMemoryRegisterRequest, context: grpc.ServicerContext
    ) -> pb.SystemSharedMemoryRegisterResponse:
        ext.memory_register(request.name)
        return pb.SystemSharedMemoryRegisterResponse()

    @rpc
    def SystemSharedMemoryUnregister(  # noqa: N802
        self, request: pb.SystemSharedMemoryUnregisterRequest, context: grpc.ServicerContext
    ) -> pb.SystemSharedMemoryUnregisterResponse:
        return pb.SystemSharedMemoryUnregisterResponse()

    @rpc
    def CudaSharedMemoryStatus(  # noqa: N802
        self, request: pb.CudaSharedMemoryStatusRequest, context: grpc.ServicerContext
    ) -> pb.CudaSharedMemoryStatusResponse:
        ext.memory_status(request.name)
        return pb.CudaSharedMemoryStatusResponse()

    @rpc
    def CudaSharedMemoryRegister(  # noqa: N802
        self, request: pb.CudaSharedMemoryRegisterRequest, context: grpc.ServicerContext
    ) -> pb.CudaSharedMemoryRegisterResponse:
        ext.memory_register(request.name)
        return pb.CudaSharedMemoryRegisterResponse()

    @rpc
    def CudaSharedMemoryUnregister(  # noqa: N802
        self, request: pb.CudaSharedMemoryUnregisterRequest, context: grpc.ServicerContext
    ) -> pb.CudaSharedMemoryUnregisterResponse:
        return pb.CudaSharedMemoryUnregisterResponse()

    @rpc
    def TraceSetting(  # noqa: N802
        self, request: pb.TraceSettingRequest, context: grpc.ServicerContext
    ) -> pb.TraceSettingResponse:
        settings = ext.trace_settings(self._tracing, update=bool(request.settings))
        response = pb.TraceSettingResponse()
        for key, value in settings.items():
            values = value if isinstance(value, list) else [value]
            response.settings[key].value.extend(str(v) for v in values)
        return response


def _value(value: Any) -> Any:
    """A LogSettings value as the JSON one (bool, int or str); unset is None (refused)."""
    choice = value.WhichOneof("parameter_choice")
    return getattr(value, choice) if choice else None
