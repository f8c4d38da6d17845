"""Hostile HTTP bodies on both REST APIs: every answer is a 4xx with a JSON error (or 200),
never a 500 or a crash, and the server answers correctly afterwards (hypothesis)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers import HALF_PLUS_TWO, copy_version, serving_settings
from swapserve.config.model_settings import ModelSettings
from swapserve.config.settings import Settings

FUZZ = settings(
    max_examples=150, deadline=None, suppress_health_check=list(HealthCheck), database=None
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(
            st.sampled_from(
                ["x", "b64", "instances", "inputs", "name", "shape", "datatype", "data"]
            ),
            inner,
            max_size=3,
        ),
    ),
    max_leaves=12,
)
tensor = st.fixed_dictionaries(
    {
        "name": st.sampled_from(["x", "y", ""]),
        "shape": st.lists(st.integers(-2, 4) | st.just(1 << 40), max_size=3),
        "datatype": st.sampled_from(["FP32", "INT64", "BYTES", "BOOL", "FP16", "nope"]),
        "data": values,
    },
    optional={"parameters": st.dictionaries(st.just("binary_data_size"), st.integers(-1, 64))},
)
tf_bodies = st.one_of(
    st.fixed_dictionaries({"instances": values}, optional={"signature_name": values}),
    st.fixed_dictionaries({"inputs": values}, optional={"signature_name": values}),
    st.fixed_dictionaries({"examples": values}, optional={"context": values}),
    values,
)
v2_bodies = st.one_of(
    st.fixed_dictionaries(
        {"inputs": st.lists(tensor, max_size=3)},
        optional={"outputs": values, "parameters": values, "id": values},
    ),
    values,
)


@pytest.fixture(scope="module")
def port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    root = tmp_path_factory.mktemp("rest-fuzz")
    copy_version(HALF_PLUS_TWO, root, 1)
    settings = Settings(
        models=(ModelSettings(name="hp2", export_root=root, poll_seconds=600),),
        host="127.0.0.1",
        port=0,
        rest_port=0,
    )
    with serving_settings(settings) as app:
        assert app.rest_port is not None
        yield app.rest_port
        # Unharmed by everything above.
        status, body = _post(app.rest_port, "/v1/models/hp2:predict", b'{"inputs": [[2.0]]}')
        assert (status, body) == (200, {"outputs": [[3.0]]})
        # A number past float32's range is cast to infinity, as TF Serving's parser does
        # (found by the fuzz test below: it was a 500).
        status, raw = _post_raw(app.rest_port, "/v1/models/hp2:predict", b'{"inputs": [[1e39]]}')
        assert (status, raw) == (200, b'{"outputs":[[Infinity]]}')


def _post(
    port: int, path: str, data: bytes, headers: dict[str, str] | None = None
) -> tuple[int, Any]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", data=data, headers=headers or {}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as err:
        with err:
            return err.code, json.loads(err.read())


def _post_raw(port: int, path: str, data: bytes) -> tuple[int, bytes]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data)
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.status, bytes(response.read())


def _check(status: int, body: Any) -> None:
    assert status == 200 or 400 <= status < 500, (status, body)
    if status != 200:
        assert isinstance(body, dict) and isinstance(body.get("error"), str)


@FUZZ
@given(
    body=tf_bodies,
    verb=st.sampled_from([":predict", ":classify", ":regress", "/versions/1:predict"]),
)
def test_tf_serving_rest_bodies(port: int, body: Any, verb: str) -> None:
    data = json.dumps(body, allow_nan=True).encode()
    _check(*_post(port, f"/v1/models/hp2{verb}", data))


@FUZZ
@given(body=v2_bodies, tail=st.binary(max_size=32), header=st.none() | st.integers(-5, 400))
def test_v2_rest_bodies(port: int, body: Any, tail: bytes, header: int | None) -> None:
    data = json.dumps(body, allow_nan=True).encode() + tail
    headers = {} if header is None else {"Inference-Header-Content-Length": str(header)}
    _check(*_post(port, "/v2/models/hp2/infer", data, headers))


@FUZZ
@given(raw=st.binary(max_size=200))
def test_raw_bytes(port: int, raw: bytes) -> None:
    _check(*_post(port, "/v1/models/hp2:predict", raw))
    _check(*_post(port, "/v2/models/hp2/infer", raw))


@pytest.mark.parametrize("depth", [1000, 100_000])
def test_deep_nesting(port: int, depth: int) -> None:
    data = ("[" * depth + "]" * depth).encode()
    _check(*_post(port, "/v1/models/hp2:predict", b'{"inputs": ' + data + b"}"))
    _check(*_post(port, "/v2/models/hp2/infer", b'{"inputs": [{"name": "x", "shape": [1], '
                  b'"datatype": "FP32", "data": ' + data + b"}]}"))  # fmt: skip


def test_huge_arrays(port: int) -> None:
    rows = ",".join(["[1.0]"] * 200_000)
    _check(*_post(port, "/v1/models/hp2:predict", f'{{"inputs": [{rows}]}}'.encode()))
