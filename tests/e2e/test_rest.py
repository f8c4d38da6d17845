"""TF Serving's REST API and HTTP health on --rest-port, with TF Serving's own test models and
known answers, plain HTTP requests (the way curl users call it)."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from helpers import (
    HALF_PLUS_TWO,
    ServerProcess,
    copy_version,
    estimator_version,
    serving_process,
    serving_settings,
    wait_for,
)
from swapserve.app import App
from swapserve.config.model_settings import ModelSettings
from swapserve.config.settings import Settings

DATA = "data-token-0123456789abcdef"


def call(
    app: App | ServerProcess,
    path: str,
    body: str | bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], Any]:
    """(status, headers, parsed JSON body) of one HTTP request."""
    data = body.encode() if isinstance(body, str) else body
    request = urllib.request.Request(
        f"http://127.0.0.1:{app.rest_port}{path}",
        data=data,
        method="POST" if data is not None else "GET",
        headers=headers or {},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, dict(response.headers), json.loads(response.read())
    except urllib.error.HTTPError as err:
        with err:
            return err.code, dict(err.headers), json.loads(err.read())


def _settings(root: Path, name: str = "half_plus_two", **kw: Any) -> Settings:
    return Settings(
        models=(ModelSettings(name=name, export_root=root, poll_seconds=0.05, **kw),),
        host="127.0.0.1",
        port=0,
        rest_port=0,
    )


@pytest.fixture(scope="module")
def hp2(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("hp2")
    copy_version(HALF_PLUS_TWO, root, 123)
    with serving_process(root, "half_plus_two", "--label", "stable=123", rest=True) as server:
        yield server


def test_status_by_model_version_and_label(hp2: App) -> None:
    want = {
        "model_version_status": [
            {
                "version": "123",
                "state": "AVAILABLE",
                "status": {"error_code": "OK", "error_message": ""},
            }
        ]
    }
    for path in ("", "/versions/123", "/labels/stable"):
        status, _, body = call(hp2, f"/v1/models/half_plus_two{path}")
        assert (status, body) == (200, want), path
    assert call(hp2, "/v1/models/half_plus_two/versions/7")[0] == 404
    assert call(hp2, "/v1/models/half_plus_two/labels/nope")[0] == 400
    assert call(hp2, "/v1/models/nope")[0] == 404


def test_metadata_in_tf_servings_json_shape(hp2: App) -> None:
    status, headers, body = call(hp2, "/v1/models/half_plus_two/metadata")
    assert status == 200 and headers["X-Model-Version"] == "123"
    assert body["model_spec"] == {"name": "half_plus_two", "version": "123"}
    defs = body["metadata"]["signature_def"]["signature_def"]
    assert {"serving_default", "classify_x_to_y", "regress_x_to_y"} <= set(defs)
    assert defs["serving_default"]["inputs"]["x"]["dtype"] == "DT_FLOAT"


@pytest.mark.parametrize(
    ("request_body", "answer"),
    [
        # TF Serving's own example: scalars for the [-1, 1] input are fed as shape [3].
        ({"instances": [1.0, 2.0, 5.0]}, {"predictions": [2.5, 3.0, 4.5]}),
        ({"inputs": [1.0, 2.0, 5.0]}, {"outputs": [2.5, 3.0, 4.5]}),
        ({"instances": [[1.0], [2.0], [5.0]]}, {"predictions": [[2.5], [3.0], [4.5]]}),
        ({"instances": [{"x": [1.0]}, {"x": [2.0]}]}, {"predictions": [[2.5], [3.0]]}),
        ({"inputs": [[1.0], [2.0], [5.0]]}, {"outputs": [[2.5], [3.0], [4.5]]}),
        ({"inputs": {"x": [[1.0], [2.0]]}}, {"outputs": [[2.5], [3.0]]}),
        ({"signature_name": "serving_default", "inputs": [[4]]}, {"outputs": [[4.0]]}),
    ],
)
def test_predict_row_and_columnar(hp2: App, request_body: Any, answer: Any) -> None:
    for path in ("", "/versions/123", "/labels/stable"):
        status, headers, body = call(
            hp2, f"/v1/models/half_plus_two{path}:predict", json.dumps(request_body)
        )
        assert (status, body) == (200, answer), path
        assert headers["X-Model-Version"] == "123"


def test_nan_and_infinity_go_through_as_tf_serving_writes_them(hp2: App) -> None:
    raw = b'{"inputs": [[NaN], [Infinity], [-Infinity]]}'
    request = urllib.request.Request(
        f"http://127.0.0.1:{hp2.rest_port}/v1/models/half_plus_two:predict", data=raw
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.read() == b'{"outputs":[[NaN],[Infinity],[-Infinity]]}'


def test_classify_and_regress_with_tf_example_json(hp2: App) -> None:
    status, _, body = call(
        hp2,
        "/v1/models/half_plus_two:regress",
        json.dumps({"signature_name": "regress_x_to_y", "examples": [{"x": 1.0}, {"x": 2.0}]}),
    )
    assert (status, body) == (200, {"result": [2.5, 3.0]})
    status, _, body = call(
        hp2,
        "/v1/models/half_plus_two:classify",
        json.dumps(
            {
                "signature_name": "classify_x_to_y",
                "context": {"x": 5.0},
                "examples": [{}, {"x": 1.0}],
            }
        ),
    )
    assert (status, body) == (200, {"result": [[["", 4.5]], [["", 2.5]]]})


@pytest.mark.parametrize(
    ("path", "body", "status", "words"),
    [
        ("/v1/models/half_plus_two:predict", "{bad", 400, "not valid JSON"),
        ("/v1/models/half_plus_two:predict", b"\xff\xfe", 400, "not UTF-8"),
        ("/v1/models/half_plus_two:predict", "[1]", 400, "must be a JSON object"),
        ("/v1/models/half_plus_two:predict", '{"instances": [[1.0]], "inputs": [[1.0]]}', 400,
         "exactly one of"),
        ("/v1/models/half_plus_two:predict", '{"instances": [["a"]]}', 400, "takes numbers"),
        ("/v1/models/half_plus_two:predict", '{"instances": [[1.0], [2.0, 3.0]]}', 400, "ragged"),
        ("/v1/models/half_plus_two:predict", '{"inputs": {"y": [[1.0]]}}', 400, "unknown input 'y'"),
        ("/v1/models/half_plus_two:predict", '{"signature_name": "nope", "inputs": [[1.0]]}', 400,
         "nope"),
        ("/v1/models/half_plus_two:predict", "[" * 100000 + "]" * 100000, 400, ""),
        ("/v1/models/nope:predict", '{"inputs": [[1.0]]}', 404, "nope"),
        ("/v1/models/half_plus_two/versions/9:predict", '{"inputs": [[1.0]]}', 404, "version 9"),
        ("/v1/models/half_plus_two/versions/x:predict", '{"inputs": [[1.0]]}', 400, "version"),
        ("/v1/models/half_plus_two:explode", "{}", 404, "explode"),
        ("/v1/models/half_plus_two:regress", '{"examples": []}', 400, "non-empty"),
        ("/v1/nothing", None, 404, "Not Found"),
    ],
)  # fmt: skip
def test_errors_are_json_with_tf_servings_status(
    hp2: App, path: str, body: str | bytes | None, status: int, words: str
) -> None:
    got, headers, answer = call(hp2, path, body)
    assert got == status, answer
    assert set(answer) == {"error"} and words in answer["error"]
    assert "X-Model-Version" not in headers


def test_get_on_a_predict_path_is_405(hp2: App) -> None:
    assert call(hp2, "/v1/models/half_plus_two:predict")[0] == 405


def test_health_endpoints_follow_readiness(tmp_path: Path) -> None:
    settings = _settings(tmp_path / "empty")
    with serving_settings(settings, wait=False) as app:
        assert call(app, "/healthz") == (200, call(app, "/healthz")[1], {"status": "live"})
        status, _, body = call(app, "/readyz")
        assert status == 503 and "no version loaded yet" in body["error"]
        copy_version(HALF_PLUS_TWO, tmp_path / "empty", 1)
        wait_for(lambda: call(app, "/readyz")[0] == 200, what="ready")
        app.drain()  # SIGTERM's first step: not ready at once, still serving
        status, _, body = call(app, "/readyz")
        assert status == 503 and "shutting down" in body["error"]
        assert call(app, "/v1/models/half_plus_two:predict", '{"inputs": [[1.0]]}')[0] == 200


def test_body_size_limit_is_413(tmp_path: Path) -> None:
    copy_version(HALF_PLUS_TWO, tmp_path, 1)
    settings = _settings(tmp_path)
    from dataclasses import replace

    with serving_settings(replace(settings, max_http_body_bytes=4096)) as app:
        body = json.dumps({"inputs": [[1.0]] * 2000})
        status, _, answer = call(app, "/v1/models/half_plus_two:predict", body)
        assert status == 413 and "--max-http-body-bytes" in answer["error"]


def test_the_data_token_guards_http_too(tmp_path: Path) -> None:
    copy_version(HALF_PLUS_TWO, tmp_path, 1)
    from dataclasses import replace

    with serving_settings(replace(_settings(tmp_path), token=DATA)) as app:
        path, body = "/v1/models/half_plus_two:predict", '{"inputs": [[1.0]]}'
        assert call(app, path, body)[0] == 401
        assert call(app, path, body, {"Authorization": "Bearer wrong-token-0123456789"})[0] == 403
        assert call(app, path, body, {"Authorization": f"bearer {DATA}"})[0] == 200
        assert call(app, "/healthz")[0] == 200  # probes need no token


def test_hot_swap_under_http_load_every_reply_names_the_version_that_computed_it(
    tmp_path: Path,
) -> None:
    root = tmp_path / "root"
    estimator_version(root, 1, weight=1.0)
    failures: list[str] = []
    seen: dict[int, int] = {}
    stop = threading.Event()
    with serving_settings(_settings(root, name="m")) as app:

        def load() -> None:
            while not stop.is_set():
                status, headers, body = call(app, "/v1/models/m:predict", '{"inputs": [[1.0]]}')
                if status != 200:
                    failures.append(f"{status}: {body}")
                    continue
                version = int(headers["X-Model-Version"])
                if body != {"outputs": [[2.0 * version]]}:
                    failures.append(f"version {version} answered {body}")
                seen[version] = seen.get(version, 0) + 1

        threads = [threading.Thread(target=load) for _ in range(4)]
        for t in threads:
            t.start()
        try:
            for version in (2, 3, 4):
                wait_for(lambda: sum(seen.values()) > 20, what="answers")
                estimator_version(root, version, weight=float(version))
                wait_for(lambda v=version: seen.get(v, 0) > 20, what=f"version {version}")
        finally:
            stop.set()
            for t in threads:
                t.join()
    assert failures == [], failures[:5]
    assert set(seen) >= {2, 3, 4}
    np.testing.assert_equal(sorted(seen)[-1], 4)


def test_workers_share_the_http_port(tmp_path: Path) -> None:
    import re

    from helpers import ServerProcess

    copy_version(HALF_PLUS_TWO, tmp_path / "m", 1)
    server = ServerProcess(
        "--model-name", "m", "--export-root", str(tmp_path / "m"), "--workers", "2",
        "--rest-port", "0",
    )  # fmt: skip
    try:
        ports = wait_for(
            lambda: (
                len(found := set(re.findall(r"HTTP on 127\.0\.0\.1:(\d+)", server.log))) >= 1
                and server.log.count("HTTP on") >= 2
                and found
            ),
            timeout=120,
            what="both workers on HTTP",
        )
        assert len(ports) == 1, server.log  # one port, shared
        rest_port = int(ports.pop())
        url = f"http://127.0.0.1:{rest_port}/v1/models/m:predict"

        def predict() -> Any:
            request = urllib.request.Request(url, data=b'{"inputs": [[1.0]]}')
            with urllib.request.urlopen(request, timeout=30) as response:
                return json.loads(response.read())

        wait_for(lambda: server.log.count("serving (loaded in") >= 2, timeout=120)
        wait_for(lambda: _ok(predict), timeout=60, what="a prediction over HTTP")
        for _ in range(20):
            assert predict() == {"outputs": [[2.5]]}
    finally:
        assert server.stop() == 0


def _ok(fn: Any) -> bool:
    try:
        fn()
        return True
    except (urllib.error.URLError, ConnectionError):
        return False


def test_b64_strings_in_and_out(hp2: App) -> None:
    import base64

    import tensorflow as tf

    from swapserve.codecs.tfserving_rest import encode_predict

    example = tf.train.Example(
        features=tf.train.Features(
            feature={"x": tf.train.Feature(float_list=tf.train.FloatList(value=[3.0]))}
        )
    ).SerializeToString()
    body = {
        "signature_name": "regress_x_to_y",
        "instances": [{"b64": base64.b64encode(example).decode()}],
    }
    status, _, answer = call(hp2, "/v1/models/half_plus_two:predict", json.dumps(body))
    assert (status, answer) == (200, {"predictions": [[3.5]]})  # outputs is [batch, 1]
    bad = {"signature_name": "regress_x_to_y", "instances": [{"b64": "not base64!"}]}
    status, _, answer = call(hp2, "/v1/models/half_plus_two:predict", json.dumps(bad))
    assert status == 400 and "base64" in answer["error"]
    # String outputs: text when UTF-8, {"b64": ...} for *_bytes outputs and for other bytes.
    strings = np.array([b"caf\xc3\xa9", b"\xff\x00"], dtype=object)
    assert encode_predict({"label": strings}, rows=True) == {
        "predictions": ["café", {"b64": base64.b64encode(b"\xff\x00").decode()}]
    }
    assert encode_predict({"image_bytes": strings[:1]}, rows=False) == {
        "outputs": [{"b64": base64.b64encode(b"caf\xc3\xa9").decode()}]
    }
