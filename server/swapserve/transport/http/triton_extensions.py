"""Triton's HTTP extensions beyond the Open Inference Protocol that swapserve does not provide,
answered in Triton's shape (``{"error": ...}``) with the reason, never a bare 404: shared memory
(tensors travel in the request here) and trace settings (OpenTelemetry's, with ``--otel``).

The status calls answer what is true: no shared-memory region is registered.
"""

from __future__ import annotations

from collections.abc import Mapping

from swapserve.errors import InvalidArgument
from swapserve.transport.http.api import HttpApi, HttpRequest, HttpResponse, Route, dumps

PROTOCOL = "kserve_v2_rest"
_NO_SHARED_MEMORY = (
    "shared-memory regions are not supported by swapserve: send the tensor data in the request "
    "(JSON data, or the binary tensor extension)"
)
TRACE_SETTINGS = {
    "trace_mode": "opentelemetry",
    "trace_level": ["TIMESTAMPS"],
    "trace_rate": "1",
    "trace_count": "-1",
    "log_frequency": "0",
    "trace_file": "",
}
"""What ``--otel`` traces: one span per call, sampled as OpenTelemetry's ``OTEL_TRACES_SAMPLER``
says (every call by default)."""


class TritonExtensionRoutes:
    """``/v2/systemsharedmemory``, ``/v2/cudasharedmemory`` and ``/v2/trace/setting``."""

    def __init__(self, api: HttpApi, tracing: bool) -> None:
        self._api = api
        self._tracing = tracing

    def routes(self) -> list[Route]:
        out = []
        for kind in ("systemsharedmemory", "cudasharedmemory"):
            base = f"/v2/{kind}"
            out += [
                Route(("GET",), base + "/status", self._memory_status),
                Route(("GET",), base + "/region/{region}/status", self._memory_status),
                Route(("POST",), base + "/region/{region}/register", self._memory_register),
                Route(("POST",), base + "/unregister", self._memory_unregister),
                Route(("POST",), base + "/region/{region}/unregister", self._memory_unregister),
            ]
        for path in ("/v2/trace/setting", "/v2/models/{name}/trace/setting"):
            out.append(Route(("GET", "POST"), path, self._trace_setting))
        return out

    def _memory_status(self, request: HttpRequest, params: Mapping[str, str]) -> HttpResponse:
        def work() -> tuple[bytes, int, dict[str, str]]:
            if "region" in params:
                raise InvalidArgument(
                    f"Unable to find shared memory region: '{params['region']}' "
                    f"({_NO_SHARED_MEMORY})"
                )
            return dumps([]), 0, {}

        return self._api.call(request, PROTOCOL, "SharedMemoryStatus", "", work)

    def _memory_register(self, request: HttpRequest, params: Mapping[str, str]) -> HttpResponse:
        def work() -> tuple[bytes, int, dict[str, str]]:
            raise InvalidArgument(f"cannot register '{params['region']}': {_NO_SHARED_MEMORY}")

        return self._api.call(request, PROTOCOL, "SharedMemoryRegister", "", work)

    def _memory_unregister(self, request: HttpRequest, params: Mapping[str, str]) -> HttpResponse:
        return self._api.call(
            request, PROTOCOL, "SharedMemoryUnregister", "", lambda: (dumps({}), 0, {})
        )

    def _trace_setting(self, request: HttpRequest, params: Mapping[str, str]) -> HttpResponse:
        def work() -> tuple[bytes, int, dict[str, str]]:
            if not self._tracing:
                raise InvalidArgument(
                    "tracing is off: start swapserve with --otel to trace every call with "
                    "OpenTelemetry (exported over OTLP)"
                )
            if request.method == "POST":
                raise InvalidArgument(
                    "trace settings come from OpenTelemetry's variables here "
                    "(OTEL_TRACES_SAMPLER, OTEL_TRACES_SAMPLER_ARG, OTEL_EXPORTER_OTLP_ENDPOINT)"
                )
            return dumps(TRACE_SETTINGS), 0, {}

        return self._api.call(request, PROTOCOL, "TraceSetting", params.get("name", ""), work)
