"""TensorFlow Serving's REST API (``/v1/models/...``) over the data plane: status, metadata,
predict (row and columnar), classify and regress, with TF Serving's paths, JSON and errors
(conversions in ``swapserve.codecs.tfserving_rest``)."""

from __future__ import annotations

from collections.abc import Mapping

from swapserve.codecs import tfserving_rest as codec
from swapserve.dataplane.requests import DataPlane
from swapserve.errors import InvalidArgument
from swapserve.transport.http.api import (
    HttpApi,
    HttpRequest,
    HttpResponse,
    MethodNotAllowed,
    Reply,
    Route,
)

PROTOCOL = "tfserving_rest"


class TFServingRoutes:
    """The ``/v1/models/...`` routes."""

    def __init__(self, api: HttpApi, dataplane: DataPlane) -> None:
        self._api = api
        self._dp = dataplane

    def routes(self) -> list[Route]:
        """One route: TF Serving's paths carry the verb after a colon."""
        return [Route(("GET", "POST"), "/v1/models/{tail}", self._v1)]

    def _v1(self, request: HttpRequest, params: Mapping[str, str]) -> HttpResponse:
        """Every ``/v1/models/...`` call: status, metadata, predict, classify, regress."""
        tail = params["tail"]
        last = tail.rsplit("/", 1)[-1]
        verb = last.rpartition(":")[2] if ":" in last else "metadata" if last == "metadata" else ""
        return self._api.call(
            request,
            PROTOCOL,
            verb if verb in ("metadata", *codec.VERBS) else "status",
            tail.split("/", 1)[0].split(":", 1)[0],
            lambda: self._work(request.method, tail, request.body),
        )

    def _work(self, method: str, tail: str, body: bytes) -> Reply:
        route = codec.parse_path(tail)
        if method in ("GET", "HEAD") and route.verb in ("", "metadata"):
            return self._get(route)
        if method == "POST" and route.verb in codec.VERBS:
            return self._post(route, body)
        raise MethodNotAllowed(f"{method} is not allowed on /v1/models/{tail}")

    def _get(self, route: codec.Route) -> Reply:
        dp = self._dp
        if route.verb == "metadata":
            meta = dp.metadata(route.model, route.version, route.label)
            payload = codec.metadata_json(route.model, meta.version, meta.signature_defs)
            return codec.dumps(payload), meta.version, {}
        versions = dp.version_status(route.model, route.version, route.label)
        return codec.dumps(codec.status_json(versions)), 0, {}

    def _post(self, route: codec.Route, raw: bytes) -> Reply:
        dp = self._dp
        body = codec.parse_body(raw)
        signature = body.get("signature_name", "")
        if not isinstance(signature, str):
            raise InvalidArgument("'signature_name' must be a string")
        if route.verb == "predict":
            _, sig = dp.signature(route.model, signature, route.version, route.label)
            inputs, rows = codec.decode_predict(body, sig)
            result = dp.predict(
                route.model, signature, inputs, version=route.version, label=route.label
            )
            return codec.dumps(codec.encode_predict(result.outputs, rows)), result.version, {}
        examples = codec.serialize_examples(body)
        result = dp.predict_examples(
            route.model, signature, examples, route.verb, version=route.version, label=route.label
        )
        encode = codec.classify_result if route.verb == "classify" else codec.regress_result
        return codec.dumps(encode(result.outputs, len(examples))), result.version, {}
