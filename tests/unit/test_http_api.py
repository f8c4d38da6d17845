"""The HTTP API without a socket: a request is (method, path, headers, body, peer), an answer
(status, headers, body). Routing, the access rule and the error mapping of the one call path."""

from __future__ import annotations

import json
from collections.abc import Mapping

from swapserve.errors import NotFound
from swapserve.observability.calls import CallRecord
from swapserve.transport.access import Access
from swapserve.transport.calls import CallPath
from swapserve.transport.http.api import (
    VERSION_HEADER,
    HttpApi,
    HttpRequest,
    HttpResponse,
    Route,
    json_response,
)
from swapserve.transport.http.health import HealthRoutes

TOKEN = "data-token-0123456789"
ADMIN = "admin-token-0123456789"


class Recorder:
    wants_peer = True

    def __init__(self) -> None:
        self.records: list[CallRecord] = []

    def observe(self, record: CallRecord) -> None:
        self.records.append(record)


class Readiness:
    def __init__(self, reason: str) -> None:
        self.reason = reason

    def not_ready_reason(self) -> str:
        return self.reason


def _api(access: Access, reason: str = "") -> tuple[HttpApi, Recorder]:
    recorder = Recorder()
    api = HttpApi(CallPath(recorder, access))  # type: ignore[arg-type]

    def predict(request: HttpRequest, params: Mapping[str, str]) -> HttpResponse:
        def work() -> tuple[bytes, int, dict[str, str]]:
            if params["name"] == "missing":
                raise NotFound("model 'missing' is not served here")
            if params["name"] == "broken":
                raise RuntimeError("secret internals")
            return b'{"ok":true}', 7, {}

        return api.call(request, "test", "Predict", params["name"], work)

    def load(request: HttpRequest, params: Mapping[str, str]) -> HttpResponse:
        return api.call(
            request, "test", "RepositoryModelLoad", params["name"], lambda: (b"{}", 0, {})
        )

    api.add(
        [Route(("POST",), "/m/{name}/predict", predict), Route(("POST",), "/m/{name}/load", load)]
    )
    api.add(
        HealthRoutes(Readiness(reason), lambda: (b"# metrics\n", "text/plain"), "/metrics").routes()
    )  # type: ignore[arg-type]
    return api, recorder


def _body(answer: HttpResponse) -> object:
    return json.loads(answer.body)


def test_routes_answer_and_record_with_the_version_header() -> None:
    api, recorder = _api(Access(None, None))
    answer = api.handle(HttpRequest("POST", "/m/half/predict", peer="127.0.0.1"))
    assert answer.status == 200 and answer.headers[VERSION_HEADER] == "7"
    (record,) = recorder.records
    assert (record.protocol, record.method, record.model, record.code) == (
        "test",
        "Predict",
        "half",
        "200",
    )


def test_unknown_paths_and_methods_are_404_and_405_in_json() -> None:
    api, _ = _api(Access(None, None))
    assert _body(api.handle(HttpRequest("GET", "/nope"))) == {"error": "Not Found: GET /nope"}
    answer = api.handle(HttpRequest("GET", "/m/half/predict"))
    assert answer.status == 405 and _body(answer) == {
        "error": "Method Not Allowed: GET /m/half/predict"
    }
    assert api.handle(HttpRequest("HEAD", "/healthz")).status == 200  # GET routes answer HEAD


def test_errors_keep_their_words_and_internals_stay_in_the_log() -> None:
    api, recorder = _api(Access(None, None))
    missing = api.handle(HttpRequest("POST", "/m/missing/predict"))
    assert missing.status == 404 and _body(missing) == {
        "error": "model 'missing' is not served here"
    }
    broken = api.handle(HttpRequest("POST", "/m/broken/predict"))
    assert broken.status == 500 and "secret" not in broken.body.decode()
    assert [r.code for r in recorder.records] == ["404", "500"]


def test_tokens_and_the_admin_rule_are_the_one_access_rule() -> None:
    api, _ = _api(Access(None, TOKEN))
    assert api.handle(HttpRequest("POST", "/m/half/predict")).status == 401
    wrong = {"authorization": "Bearer not-the-token-at-all"}
    assert api.handle(HttpRequest("POST", "/m/half/predict", wrong)).status == 403
    right = {"authorization": f"bearer {TOKEN}"}
    assert api.handle(HttpRequest("POST", "/m/half/predict", right)).status == 200
    # Admin: loopback only without an admin token (the data token still needed here).
    assert api.handle(HttpRequest("POST", "/m/half/load", right, peer="::1")).status == 200
    remote = api.handle(HttpRequest("POST", "/m/half/load", right, peer="203.0.113.9"))
    assert remote.status == 403 and "--allow-remote-admin" in _body(remote)["error"]  # type: ignore[index]
    admin_api, _ = _api(Access(ADMIN, None))
    bearer = {"authorization": f"Bearer {ADMIN}"}
    assert (
        admin_api.handle(HttpRequest("POST", "/m/half/load", bearer, peer="203.0.113.9")).status
        == 200
    )


def test_health_routes_run_inline() -> None:
    api, _ = _api(Access(None, TOKEN), reason="model 'half' has no version loaded yet")
    assert api.resolve("GET", "/healthz").inline and api.resolve("GET", "/readyz").inline
    ready = api.handle(HttpRequest("GET", "/readyz"))
    assert ready.status == 503 and _body(ready) == {
        "error": "model 'half' has no version loaded yet"
    }
    scrape = api.handle(HttpRequest("GET", "/metrics"))
    assert scrape.body == b"# metrics\n" and scrape.headers["Content-Type"] == "text/plain"
    assert not api.resolve("POST", "/m/half/predict").inline
    assert json_response(200, {"a": float("nan")}).body == b'{"a":NaN}'
