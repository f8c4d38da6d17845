"""TensorFlow Serving's REST API (``/v1/models/...``) JSON <-> the data plane's types.

The rules are TF Serving's (https://www.tensorflow.org/tfx/serving/api_rest):

- ``instances`` (row format): a list with one entry per example, each a value (single-input
  signatures) or an object of named inputs; ``inputs`` (columnar): a value (single input) or an
  object of named inputs, each holding the whole batch.
- Numbers are cast to the signature's dtypes (an integer input refuses 1.5); ``{"b64": "..."}``
  carries binary strings; ``NaN``, ``Infinity`` and ``-Infinity`` are accepted and written back.
- The answer is ``predictions`` (row: one entry per example, a value for a single output, an
  object for several) or ``outputs`` (columnar: a value for a single output, else an object).
  String outputs come back as text, or as ``{"b64": ...}`` when their name ends in ``_bytes`` or
  they are not valid UTF-8.
- ``:classify``/``:regress`` take ``examples`` (+ ``context``) as tf.Example JSON.

Pure conversion: no HTTP here (``swapserve.transport.http.server`` does that).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from google.protobuf import json_format

from swapserve.apis import pool
from swapserve.apis import tfserving as api
from swapserve.codecs import json_body
from swapserve.codecs import tfserving as grpc_codec
from swapserve.config.model_settings import MAX_VERSION
from swapserve.dataplane.types import SignatureSpec, State, VersionStatus
from swapserve.errors import InvalidArgument, NotFound
from swapserve_client.dtypes import DT_STRING, dtype_name, numpy_dtype

MAX_DEPTH = 64
"""Deepest nesting accepted in a tensor value (TensorFlow's own limit is rank 254)."""

_STATE_NAMES = {
    State.START: "START",
    State.LOADING: "LOADING",
    State.AVAILABLE: "AVAILABLE",
    State.UNLOADING: "UNLOADING",
    State.END: "END",
    State.FAILED: "END",  # TF Serving has no FAILED state: END with an error
}
VERBS = ("predict", "classify", "regress")
"""The POST methods of ``/v1/models/NAME...:VERB``."""


@dataclass(frozen=True)
class Route:
    """What a ``/v1/models/...`` path asks for."""

    model: str
    version: int = 0
    label: str = ""
    verb: str = ""
    """"" (status), "metadata", "predict", "classify" or "regress"."""


def parse_path(tail: str) -> Route:
    """``NAME[/versions/V | /labels/L][/metadata | :predict | :classify | :regress]``.

    Raises:
        NotFound: a path of no known shape (TF Serving answers 404 too).
        InvalidArgument: a version that is not a number from 1 to 2^63-1.
    """
    verb = ""
    head = tail
    last = tail.rsplit("/", 1)[-1]
    if ":" in last:
        head, _, verb = tail.rpartition(":")
        if verb not in VERBS:
            raise NotFound(f"Malformed request: unknown method ':{verb}' in /v1/models/{tail}")
    parts = head.split("/")
    if parts[-1] == "metadata" and not verb:
        verb = "metadata"
        parts = parts[:-1]
    if not parts or not parts[0]:
        raise NotFound(f"Malformed request: /v1/models/{tail} names no model")
    model, rest = parts[0], parts[1:]
    if not rest:
        return Route(model, verb=verb)
    if len(rest) == 2 and rest[0] == "versions":
        text = rest[1]
        if not (text.isascii() and text.isdigit()) or not 0 < int(text) <= MAX_VERSION:
            raise InvalidArgument(f"version must be a number from 1 to {MAX_VERSION}: {text!r}")
        return Route(model, version=int(text), verb=verb)
    if len(rest) == 2 and rest[0] == "labels" and rest[1]:
        return Route(model, label=rest[1], verb=verb)
    raise NotFound(f"Malformed request: /v1/models/{tail}")


def parse_body(body: bytes) -> dict[str, Any]:
    """A request body as a JSON object (``NaN``/``Infinity`` accepted, as TF Serving does).

    Raises:
        InvalidArgument: not UTF-8, not JSON, too deeply nested, or not an object.
    """
    value = json_body.parse(body, "the request body")
    if not isinstance(value, dict):
        raise InvalidArgument(f"the request body must be a JSON object, got {_kind(value)}")
    return value


# ---- predict ----------------------------------------------------------------------------------


def decode_predict(
    body: Mapping[str, Any], sig: SignatureSpec
) -> tuple[dict[str, np.ndarray], bool]:
    """The inputs of a ``:predict`` body for ``sig``, and whether it used the row format.

    Raises:
        InvalidArgument: naming what does not fit (TF Serving's rules, above).
    """
    has_rows, has_columns = "instances" in body, "inputs" in body
    if has_rows == has_columns:
        raise InvalidArgument(
            "the request must have exactly one of 'instances' (row format) or 'inputs' "
            "(columnar format)"
        )
    unknown = sorted(set(body) - {"instances", "inputs", "signature_name"})
    if unknown:
        raise InvalidArgument(f"unknown field {', '.join(map(repr, unknown))} in the request")
    names = list(sig.inputs)
    if has_rows:
        rows = body["instances"]
        if not isinstance(rows, list) or not rows:
            raise InvalidArgument("'instances' must be a non-empty list")
        if all(isinstance(r, dict) and not _is_b64(r) for r in rows):
            values: dict[str, Any] = {}
            for i, row in enumerate(rows):
                if set(row) != set(names):
                    raise InvalidArgument(
                        f"instance {i} has inputs {sorted(row)}; signature '{sig.name}' takes "
                        f"{sorted(names)}"
                    )
                for name in names:
                    values.setdefault(name, []).append(row[name])
        elif any(isinstance(r, dict) and not _is_b64(r) for r in rows):
            raise InvalidArgument("'instances' mixes objects of named inputs with plain values")
        else:
            values = {_single(names, sig): rows}
        return {n: to_array(v, sig, n) for n, v in values.items()}, True
    columns = body["inputs"]
    if isinstance(columns, dict) and not _is_b64(columns):
        return {n: to_array(v, sig, n) for n, v in columns.items()}, False
    return {_single(names, sig): to_array(columns, sig, _single(names, sig))}, False


def _single(names: list[str], sig: SignatureSpec) -> str:
    if len(names) != 1:
        raise InvalidArgument(
            f"signature '{sig.name}' takes {len(names)} inputs {sorted(names)}: name them"
        )
    return names[0]


def to_array(value: Any, sig: SignatureSpec, name: str) -> np.ndarray:
    """One input's JSON value as an array of the signature's dtype.

    Raises:
        InvalidArgument: an unknown input, a ragged or too deep value, a type that does not fit.
    """
    spec = sig.inputs.get(name)
    if spec is None:
        raise InvalidArgument(
            f"unknown input '{name}' for signature '{sig.name}'; it takes {sorted(sig.inputs)}"
        )
    shape, flat = _flatten(value, name)
    if spec.dtype == DT_STRING:
        out = np.empty(len(flat), dtype=object)
        out[:] = [_string(v, name) for v in flat]
        return out.reshape(shape)
    dtype = numpy_dtype(spec.dtype)
    try:
        return _numbers(flat, dtype, name).reshape(shape)
    except InvalidArgument:
        raise
    except (TypeError, ValueError, OverflowError) as err:
        raise InvalidArgument(
            f"input '{name}' does not fit {dtype_name(spec.dtype)}: {err}"
        ) from None


def _flatten(value: Any, name: str) -> tuple[list[int], list[Any]]:
    """Shape and row-major elements of a nested list; refuses ragged and too deep values."""
    shape: list[int] = []
    probe = value
    while isinstance(probe, list):
        if len(shape) == MAX_DEPTH:
            raise InvalidArgument(f"input '{name}' is nested deeper than {MAX_DEPTH} levels")
        shape.append(len(probe))
        if not probe:
            break
        probe = probe[0]
    level = [value]
    for depth, size in enumerate(shape):
        nxt: list[Any] = []
        for item in level:
            if not isinstance(item, list) or len(item) != size:
                raise InvalidArgument(
                    f"input '{name}' is ragged: at depth {depth} every list must have {size} "
                    "entries"
                )
            nxt.extend(item)
        level = nxt
    if any(isinstance(item, list) for item in level):
        raise InvalidArgument(f"input '{name}' is ragged: lists and values mix at one depth")
    return shape, level


def _numbers(flat: list[Any], dtype: np.dtype[Any], name: str) -> np.ndarray:
    for v in flat:
        if isinstance(v, (str, dict)) or v is None:
            raise InvalidArgument(f"input '{name}' takes numbers ({dtype}), got {_kind(v)}")
    if dtype.kind == "b":
        if not all(isinstance(v, bool) or v in (0, 1) for v in flat):
            raise InvalidArgument(f"input '{name}' takes booleans")
        return np.array(flat, dtype=dtype)
    if dtype.kind in "iu":
        if not all(isinstance(v, int) or (isinstance(v, float) and v.is_integer()) for v in flat):
            raise InvalidArgument(f"input '{name}' takes integers ({dtype}), got a fraction")
        info = np.iinfo(dtype)
        if any(not info.min <= v <= info.max for v in flat):
            raise InvalidArgument(f"input '{name}' has a value outside {dtype}'s range")
        return np.array([int(v) for v in flat], dtype=dtype)
    if dtype.kind == "c":
        raise InvalidArgument(f"input '{name}' is complex: not expressible in JSON")
    with np.errstate(over="ignore"):  # past the float's range: infinity, as TF Serving casts
        return np.array(flat, dtype=dtype)


def _string(value: Any, name: str) -> bytes:
    if isinstance(value, str):
        return value.encode("utf-8")
    if _is_b64(value):
        try:
            return base64.b64decode(value["b64"], validate=True)
        except (binascii.Error, ValueError, TypeError):
            raise InvalidArgument(f"input '{name}' has invalid base64 in 'b64'") from None
    raise InvalidArgument(f"input '{name}' takes strings, got {_kind(value)}")


def _is_b64(value: Any) -> bool:
    return isinstance(value, dict) and set(value) == {"b64"} and isinstance(value["b64"], str)


def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}.get(
        type(value), "null" if value is None else "a number"
    )


def encode_predict(outputs: Mapping[str, np.ndarray], rows: bool) -> dict[str, Any]:
    """``{"predictions": ...}`` (row format) or ``{"outputs": ...}`` (columnar), TF Serving's
    single-output flattening included.

    Raises:
        InvalidArgument: row format with outputs of different batch sizes.
    """
    names = sorted(outputs)
    if not rows:
        values = {n: _json_value(outputs[n], n) for n in names}
        return {"outputs": values[names[0]] if len(names) == 1 else values}
    batches = {n: outputs[n].shape[0] if outputs[n].ndim else None for n in names}
    if len(set(batches.values())) != 1 or None in batches.values():
        raise InvalidArgument(
            "the outputs have different batch sizes "
            f"{ {n: b for n, b in batches.items()} }: use the columnar format ('inputs')"
        )
    if len(names) == 1:
        return {"predictions": _json_value(outputs[names[0]], names[0])}
    columns = {n: _json_value(outputs[n], n) for n in names}
    size = next(iter(batches.values())) or 0
    return {"predictions": [{n: columns[n][i] for n in names} for i in range(size)]}


def _json_value(array: np.ndarray, name: str) -> Any:
    if array.dtype.kind in "OSU":
        b64 = name.endswith("_bytes")
        return _map_nested(array.tolist(), lambda v: _string_out(v, b64))
    if array.dtype.kind == "c":
        raise InvalidArgument(f"output '{name}' is complex: not expressible in JSON")
    if array.dtype == np.float16:
        array = array.astype(np.float32)
    return array.tolist()


def _string_out(value: Any, b64: bool) -> Any:
    raw = value if isinstance(value, bytes) else str(value).encode("utf-8")
    if not b64:
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            pass
    return {"b64": base64.b64encode(raw).decode("ascii")}


def _map_nested(value: Any, leaf: Any) -> Any:
    if isinstance(value, list):
        return [_map_nested(v, leaf) for v in value]
    return leaf(value)


def dumps(payload: Any) -> bytes:
    """JSON as TF Serving writes it (``NaN``/``Infinity`` literal, compact)."""
    return json.dumps(payload, separators=(",", ":"), allow_nan=True).encode("utf-8")


# ---- classify and regress ------------------------------------------------------------------------


def serialize_examples(body: Mapping[str, Any]) -> np.ndarray:
    """``examples`` (+ ``context``, merged into each, the example's own features winning) as
    serialized tf.Examples, one per element.

    Raises:
        InvalidArgument: no examples, or a feature value JSON cannot map to a tf.train.Feature.
    """
    unknown = sorted(set(body) - {"examples", "context", "signature_name"})
    if unknown:
        raise InvalidArgument(f"unknown field {', '.join(map(repr, unknown))} in the request")
    examples = body.get("examples")
    if not isinstance(examples, list) or not examples:
        raise InvalidArgument("'examples' must be a non-empty list of objects")
    context = body.get("context", {})
    if not isinstance(context, dict):
        raise InvalidArgument("'context' must be an object of features")
    out = np.empty(len(examples), dtype=object)
    for i, example in enumerate(examples):
        if not isinstance(example, dict):
            raise InvalidArgument(f"example {i} must be an object of features")
        proto = api.Example()
        for key, value in {**context, **example}.items():
            proto.features.feature[key].CopyFrom(_feature(value, key))
        out[i] = proto.SerializeToString()
    return out


def _feature(value: Any, key: str) -> api.Feature:
    values = value if isinstance(value, list) else [value]
    feature = api.Feature()
    if all(isinstance(v, str) or _is_b64(v) for v in values) and values:
        feature.bytes_list.value.extend(_string(v, key) for v in values)
    elif all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        if any(not -(2**63) <= v < 2**63 for v in values):
            raise InvalidArgument(f"feature '{key}' has an integer outside int64")
        feature.int64_list.value.extend(values)
    elif all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        feature.float_list.value.extend(float(v) for v in values)
    else:
        raise InvalidArgument(
            f"feature '{key}' must be a number, a string, {{\"b64\": ...}} or a list of one kind"
        )
    return feature


def classify_result(outputs: Mapping[str, np.ndarray], batch: int) -> dict[str, Any]:
    """``{"result": [[[label, score], ...], ...]}`` as TF Serving answers ``:classify``."""
    result = grpc_codec.classification_result(outputs, batch)
    return {
        "result": [[[c.label, c.score] for c in entry.classes] for entry in result.classifications]
    }


def regress_result(outputs: Mapping[str, np.ndarray], batch: int) -> dict[str, Any]:
    """``{"result": [value, ...]}`` as TF Serving answers ``:regress``."""
    result = grpc_codec.regression_result(outputs, batch)
    return {"result": [r.value for r in result.regressions]}


# ---- status and metadata -------------------------------------------------------------------------


def status_json(versions: Iterable[VersionStatus]) -> dict[str, Any]:
    """GET ``/v1/models/NAME``: TF Serving's ``model_version_status``, version as text."""
    return {
        "model_version_status": [
            {
                "version": str(v.version),
                "state": _STATE_NAMES[v.state],
                "status": {
                    "error_code": "UNKNOWN" if v.state is State.FAILED else "OK",
                    "error_message": v.error,
                },
            }
            for v in versions
        ]
    }


def metadata_json(name: str, version: int, signature_defs: Mapping[str, Any]) -> dict[str, Any]:
    """GET ``.../metadata``: ``model_spec`` and ``metadata.signature_def`` as TF Serving's JSON."""
    response = grpc_codec.metadata_response(name, version, signature_defs)
    # The SignatureDefMap inside is packed in an Any: its type URL resolves in our pool only.
    return json_format.MessageToDict(
        response, preserving_proto_field_name=True, descriptor_pool=pool.descriptors()
    )
