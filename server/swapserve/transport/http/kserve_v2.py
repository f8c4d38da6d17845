"""KServe V2 / Open Inference Protocol over HTTP (``/v2/...``) on the REST port, for
``tritonclient.http``, KServe and plain HTTP clients. Same data plane, access rule and errors as
the rest of the port; JSON and binary tensors in ``swapserve.codecs.kserve_v2_rest``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from swapserve import __version__
from swapserve.codecs import json_body
from swapserve.codecs import kserve_v2 as v2
from swapserve.codecs import kserve_v2_rest as codec
from swapserve.codecs import kserve_v2_stats as stats_codec
from swapserve.dataplane import triton_extensions as ext
from swapserve.dataplane.admin import Admin
from swapserve.dataplane.requests import DataPlane
from swapserve.errors import InvalidArgument, Unavailable
from swapserve.observability import log_settings
from swapserve.transport.http.api import HttpApi, HttpRequest, HttpResponse, Reply, Route, dumps

PROTOCOL = "kserve_v2_rest"
_PLATFORM = stats_codec.PLATFORM
Params = Mapping[str, str]


class KServeV2Routes:
    """The ``/v2`` routes."""

    def __init__(
        self, api: HttpApi, dataplane: DataPlane, admin: Admin, tracing: bool = False
    ) -> None:
        self._api = api
        self._dp = dataplane
        self._admin = admin
        self._tracing = tracing

    def routes(self) -> list[Route]:
        """Every route, in match order (``/v2/models/stats`` before ``/v2/models/{name}``)."""
        out = [
            Route(("GET",), "/v2", self._server_metadata),
            Route(("GET",), "/v2/health/live", self._live),
            Route(("GET",), "/v2/health/ready", self._ready),
            Route(("GET",), "/v2/models/stats", self._statistics),
            Route(("GET",), "/v2/logging", self._log_settings),
            Route(("POST",), "/v2/logging", self._update_log_settings),
        ]
        for prefix in ("/v2/models/{name}", "/v2/models/{name}/versions/{version}"):
            out += [
                Route(("GET",), prefix, self._model_metadata),
                Route(("GET",), prefix + "/ready", self._model_ready),
                Route(("GET",), prefix + "/stats", self._statistics),
                Route(("GET",), prefix + "/config", self._config),
                Route(("POST",), prefix + "/infer", self._infer),
            ]
        return [
            *out,
            Route(("POST",), "/v2/repository/index", self._index),
            Route(("POST",), "/v2/repository/models/{name}/load", self._load),
            Route(("POST",), "/v2/repository/models/{name}/unload", self._unload),
        ]

    def _call(
        self, request: HttpRequest, method: str, model: str, work: Callable[[], Reply]
    ) -> HttpResponse:
        return self._api.call(request, PROTOCOL, method, model, work)

    # ---- server -----------------------------------------------------------------------------

    def _server_metadata(self, request: HttpRequest, params: Params) -> HttpResponse:
        payload = {
            "name": "swapserve",
            "version": __version__,
            "extensions": ext.extensions(self._tracing),
        }
        return self._call(request, "ServerMetadata", "", lambda: (dumps(payload), 0, {}))

    def _live(self, request: HttpRequest, params: Params) -> HttpResponse:
        return self._call(request, "ServerLive", "", lambda: (dumps({"live": True}), 0, {}))

    def _ready(self, request: HttpRequest, params: Params) -> HttpResponse:
        def work() -> Reply:
            reason = self._dp.not_ready_reason()
            if reason:
                raise Unavailable(reason)
            return dumps({"ready": True}), 0, {}

        return self._call(request, "ServerReady", "", work)

    def _log_settings(self, request: HttpRequest, params: Params) -> HttpResponse:
        return self._call(
            request, "LogSettings", "", lambda: (dumps(log_settings.current()), 0, {})
        )

    def _update_log_settings(self, request: HttpRequest, params: Params) -> HttpResponse:
        def work() -> Reply:
            body = json_body.parse(request.body, "the log settings")
            if not isinstance(body, dict):
                raise InvalidArgument("the log settings must be a JSON object")
            return dumps(log_settings.update(body)), 0, {}

        return self._call(request, "UpdateLogSettings", "", work)

    # ---- models -----------------------------------------------------------------------------

    def _model_metadata(self, request: HttpRequest, params: Params) -> HttpResponse:
        name, version, label = _target(params)

        def work() -> Reply:
            number, sig = self._dp.signature(name, "", version, label)
            payload = {
                "name": name,
                "versions": [str(v) for v in self._dp.loaded_versions(name)],
                "platform": _PLATFORM,
                "inputs": [_tensor(t) for t in sig.inputs.values()],
                "outputs": [_tensor(t) for t in sig.outputs.values()],
            }
            return dumps(payload), number, {}

        return self._call(request, "ModelMetadata", name, work)

    def _statistics(self, request: HttpRequest, params: Params) -> HttpResponse:
        name, version, label = _target(params) if "name" in params else ("", 0, "")

        def work() -> Reply:
            entries = self._dp.statistics(name, version, label)
            return dumps(stats_codec.statistics(entries)), 0, {}

        return self._call(request, "ModelStatistics", name, work)

    def _config(self, request: HttpRequest, params: Params) -> HttpResponse:
        name, version, label = _target(params)

        def work() -> Reply:
            info = self._dp.model_config(name, version, label)
            return dumps(stats_codec.model_config(info)), info.version, {}

        return self._call(request, "ModelConfig", name, work)

    def _model_ready(self, request: HttpRequest, params: Params) -> HttpResponse:
        name, version, label = _target(params)

        def work() -> Reply:
            if not self._dp.model_ready(name, version, label):
                which = f"version {version or label} of " if version or label else ""
                raise Unavailable(f"{which}model '{name}' is not ready")
            return dumps({"name": name, "ready": True}), 0, {}

        return self._call(request, "ModelReady", name, work)

    def _infer(self, request: HttpRequest, params: Params) -> HttpResponse:
        name, version, label = _target(params)
        header_length = request.headers.get(codec.HEADER_LENGTH.lower())

        def work() -> Reply:
            head, tail = codec.split_body(request.body, header_length)
            call = codec.decode_infer(head, tail)
            result = self._dp.predict(
                name,
                call.signature,
                call.inputs,
                version=version,
                label=label,
                output_filter=call.outputs,
            )
            payload, json_length = codec.encode_infer(name, result.version, call, result.outputs)
            headers = (
                {"Content-Type": "application/octet-stream", codec.HEADER_LENGTH: str(json_length)}
                if json_length is not None
                else {}
            )
            return payload, result.version, headers

        return self._call(request, "ModelInfer", name, work)

    # ---- repository -------------------------------------------------------------------------

    def _index(self, request: HttpRequest, params: Params) -> HttpResponse:
        def work() -> Reply:
            body = request.body
            options = json_body.parse(body, "the index request") if body.strip() else {}
            if not isinstance(options, dict):
                raise InvalidArgument("the index request must be a JSON object")
            rows = [v2.index_row(e) for e in self._dp.index(ready_only=bool(options.get("ready")))]
            return dumps(rows), 0, {}

        return self._call(request, "RepositoryIndex", "", work)

    def _load(self, request: HttpRequest, params: Params) -> HttpResponse:
        name = params["name"]

        def work() -> Reply:
            force = codec.load_force(request.body)
            return dumps({}), self._admin.reload(name, 0, force).version, {}

        return self._call(request, "RepositoryModelLoad", name, work)

    def _unload(self, request: HttpRequest, params: Params) -> HttpResponse:
        name = params["name"]

        def work() -> Reply:
            self._admin.unload(name)
            return dumps({}), 0, {}

        return self._call(request, "RepositoryModelUnload", name, work)


def _target(params: Params) -> tuple[str, int, str]:
    """(model, version, label) of a ``/v2/models/{name}[/versions/{version}]`` path; the
    version may be a label, as over gRPC."""
    version, label = v2.parse_version(params.get("version", ""))
    return params["name"], version, label


def _tensor(spec: Any) -> dict[str, Any]:
    return {
        "name": spec.name,
        "datatype": v2.datatype_of_spec(spec),
        "shape": v2.shape_of_spec(spec),
    }
