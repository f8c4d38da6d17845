"""Triton's HTTP extensions beyond the Open Inference Protocol that swapserve does not provide,
answered in Triton's shape (``{"error": ...}``) with the reason, never a bare 404: shared memory
and trace settings (the answers are ``swapserve.dataplane.triton_extensions``)."""

from __future__ import annotations

from collections.abc import Mapping

from swapserve.dataplane import triton_extensions as ext
from swapserve.transport.http.api import HttpApi, HttpRequest, HttpResponse, Route, dumps

PROTOCOL = "kserve_v2_rest"


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
            return dumps(ext.memory_status(params.get("region", ""))), 0, {}

        return self._api.call(request, PROTOCOL, "SharedMemoryStatus", "", work)

    def _memory_register(self, request: HttpRequest, params: Mapping[str, str]) -> HttpResponse:
        def work() -> tuple[bytes, int, dict[str, str]]:
            ext.memory_register(params["region"])
            return dumps({}), 0, {}

        return self._api.call(request, PROTOCOL, "SharedMemoryRegister", "", work)

    def _memory_unregister(self, request: HttpRequest, params: Mapping[str, str]) -> HttpResponse:
        return self._api.call(
            request, PROTOCOL, "SharedMemoryUnregister", "", lambda: (dumps({}), 0, {})
        )

    def _trace_setting(self, request: HttpRequest, params: Mapping[str, str]) -> HttpResponse:
        def work() -> tuple[bytes, int, dict[str, str]]:
            settings = ext.trace_settings(self._tracing, update=request.method == "POST")
            return dumps(settings), 0, {}

        return self._api.call(request, PROTOCOL, "TraceSetting", params.get("name", ""), work)
