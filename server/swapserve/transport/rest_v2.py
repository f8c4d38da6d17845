"""KServe V2 / Open Inference Protocol over HTTP (``/v2/...``) on the REST port, for
``tritonclient.http``, KServe and plain HTTP clients. Same data plane, tokens and errors as the
rest of the port (``rest.py``); JSON and binary tensors in ``swapserve.codecs.kserve_v2_rest``.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from aiohttp import web

from swapserve import __version__
from swapserve.codecs import kserve_v2 as v2
from swapserve.codecs import kserve_v2_rest as codec
from swapserve.codecs import kserve_v2_stats as stats_codec
from swapserve.dataplane import DataPlane
from swapserve.errors import InvalidArgument, Unavailable

if TYPE_CHECKING:
    from swapserve.transport.rest import Reply, RestServer

_PROTOCOL = "kserve_v2_rest"
_PLATFORM = stats_codec.PLATFORM


def _dumps(payload: Any) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode("utf-8")


class KServeV2Routes:
    """The ``/v2`` routes of one REST server."""

    def __init__(self, server: RestServer, dataplane: DataPlane) -> None:
        self._server = server
        self._dp = dataplane

    def add_to(self, app: web.Application) -> None:
        """Registers every route."""
        r = app.router
        r.add_get("/v2", self._server_metadata)
        r.add_get("/v2/health/live", self._live)
        r.add_get("/v2/health/ready", self._ready)
        r.add_get("/v2/models/stats", self._statistics)
        for prefix in ("/v2/models/{name}", "/v2/models/{name}/versions/{version}"):
            r.add_get(prefix, self._model_metadata)
            r.add_get(prefix + "/ready", self._model_ready)
            r.add_get(prefix + "/stats", self._statistics)
            r.add_get(prefix + "/config", self._config)
            r.add_post(prefix + "/infer", self._infer)
        r.add_post("/v2/repository/index", self._index)
        r.add_post("/v2/repository/models/{name}/load", self._load)
        r.add_post("/v2/repository/models/{name}/unload", self._unload)

    async def _call(
        self, request: web.Request, method: str, model: str, work: Any, admin: bool = False
    ) -> web.Response:
        return await self._server.run(request, _PROTOCOL, method, model, work, admin=admin)

    # ---- server -----------------------------------------------------------------------------

    async def _server_metadata(self, request: web.Request) -> web.Response:
        payload = {"name": "swapserve", "version": __version__, "extensions": ["model_repository"]}
        return await self._call(request, "ServerMetadata", "", lambda: (_dumps(payload), 0, {}))

    async def _live(self, request: web.Request) -> web.Response:
        return await self._call(request, "ServerLive", "", lambda: (_dumps({"live": True}), 0, {}))

    async def _ready(self, request: web.Request) -> web.Response:
        def work() -> Reply:
            reason = self._dp.not_ready_reason()
            if reason:
                raise Unavailable(reason)
            return _dumps({"ready": True}), 0, {}

        return await self._call(request, "ServerReady", "", work)

    # ---- models -----------------------------------------------------------------------------

    async def _model_metadata(self, request: web.Request) -> web.Response:
        name, version, label = _target(request)

        def work() -> Reply:
            number, sig = self._dp.signature(name, "", version, label)
            payload = {
                "name": name,
                "versions": [str(number)],
                "platform": _PLATFORM,
                "inputs": [_tensor(t) for t in sig.inputs.values()],
                "outputs": [_tensor(t) for t in sig.outputs.values()],
            }
            return _dumps(payload), number, {}

        return await self._call(request, "ModelMetadata", name, work)

    async def _statistics(self, request: web.Request) -> web.Response:
        name, version, label = _target(request) if "name" in request.match_info else ("", 0, "")

        def work() -> Reply:
            entries = self._dp.statistics(name, version, label)
            return _dumps(stats_codec.statistics(entries)), 0, {}

        return await self._call(request, "ModelStatistics", name, work)

    async def _config(self, request: web.Request) -> web.Response:
        name, version, label = _target(request)

        def work() -> Reply:
            info = self._dp.model_config(name, version, label)
            return _dumps(stats_codec.model_config(info)), info.version, {}

        return await self._call(request, "ModelConfig", name, work)

    async def _model_ready(self, request: web.Request) -> web.Response:
        name, version, label = _target(request)

        def work() -> Reply:
            if not self._dp.model_ready(name, version, label):
                which = f"version {version or label} of " if version or label else ""
                raise Unavailable(f"{which}model '{name}' is not ready")
            return _dumps({"name": name, "ready": True}), 0, {}

        return await self._call(request, "ModelReady", name, work)

    async def _infer(self, request: web.Request) -> web.Response:
        name, version, label = _target(request)
        body = await request.read()
        header_length = request.headers.get(codec.HEADER_LENGTH)

        def work() -> Reply:
            head, tail = codec.split_body(body, header_length)
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

        return await self._call(request, "ModelInfer", name, work)

    # ---- repository -------------------------------------------------------------------------

    async def _index(self, request: web.Request) -> web.Response:
        body = await request.read()

        def work() -> Reply:
            try:
                options = json.loads(body) if body.strip() else {}
            except (UnicodeDecodeError, json.JSONDecodeError) as err:
                raise InvalidArgument(f"the index request is not valid JSON: {err}") from None
            if not isinstance(options, dict):
                raise InvalidArgument("the index request must be a JSON object")
            rows = [v2.index_row(e) for e in self._dp.index(ready_only=bool(options.get("ready")))]
            return _dumps(rows), 0, {}

        return await self._call(request, "RepositoryIndex", "", work)

    async def _load(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        return await self._call(
            request,
            "RepositoryModelLoad",
            name,
            lambda: (_dumps({}), self._dp.reload(name, 0).version, {}),
            admin=True,
        )

    async def _unload(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]

        def work() -> Reply:
            self._dp.unload(name)
            return _dumps({}), 0, {}

        return await self._call(request, "RepositoryModelUnload", name, work, admin=True)


def _target(request: web.Request) -> tuple[str, int, str]:
    """(model, version, label) of a ``/v2/models/{name}[/versions/{version}]`` path; the
    version may be a label, as over gRPC."""
    name = request.match_info["name"]
    version, label = v2.parse_version(request.match_info.get("version", ""))
    return name, version, label


def _tensor(spec: Any) -> dict[str, Any]:
    return {
        "name": spec.name,
        "datatype": v2.datatype_of_spec(spec),
        "shape": v2.shape_of_spec(spec),
    }


__all__ = ["KServeV2Routes"]
