"""KServe V2 / Open Inference Protocol over HTTP: JSON bodies and the binary tensor data
extension <-> the data plane's types.

An inference body is a JSON object, optionally followed by binary tensor data: the header
``Inference-Header-Content-Length`` says where the JSON ends, and each input with
``parameters.binary_data_size`` takes that many bytes of the rest, in order (the layout of gRPC's
``raw_input_contents``). Outputs come back as JSON ``data``, or binary when the request asks
(``parameters.binary_data_output`` for all, ``outputs[i].parameters.binary_data`` for one) --
``tritonclient.http`` asks for binary by default.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from swapserve.codecs import json_body
from swapserve.codecs import kserve_v2 as v2
from swapserve.errors import InvalidArgument
from swapserve_client.dtypes import TensorError

HEADER_LENGTH = "Inference-Header-Content-Length"


@dataclass(frozen=True)
class HttpInferCall:
    """A decoded V2 HTTP inference request."""

    inputs: dict[str, np.ndarray]
    signature: str
    outputs: list[str]
    """Requested outputs, in order (empty: every output)."""
    binary: dict[str, bool] = field(default_factory=dict)
    """Per requested output: answer it as binary data."""
    binary_default: bool = False
    request_id: str = ""


def split_body(body: bytes, header_length: str | None) -> tuple[Any, bytes]:
    """The JSON part (parsed) and the binary tail of an inference body.

    Raises:
        InvalidArgument: a bad header length, invalid JSON or a non-object.
    """
    if header_length is None:
        head, tail = body, b""
    else:
        if not (header_length.isascii() and header_length.strip().isdigit()):
            raise InvalidArgument(f"{HEADER_LENGTH} is not a number: {header_length!r}")
        size = int(header_length)
        if not 0 <= size <= len(body):
            raise InvalidArgument(
                f"{HEADER_LENGTH} {size} does not fit a body of {len(body)} bytes"
            )
        head, tail = body[:size], body[size:]
    value = json_body.parse(head, "the inference request")
    if not isinstance(value, dict):
        raise InvalidArgument("the inference request must be a JSON object")
    return value, tail


def decode_infer(request: Mapping[str, Any], tail: bytes) -> HttpInferCall:
    """Every input (JSON ``data`` or binary), the requested outputs and parameters.

    Raises:
        InvalidArgument: naming the input or field that is wrong.
    """
    params = _object(request.get("parameters", {}), "parameters")
    signature = params.get("signature_name", "")
    if not isinstance(signature, str):
        raise InvalidArgument("parameter 'signature_name' must be a string")
    entries = request.get("inputs")
    if not isinstance(entries, list) or not entries:
        raise InvalidArgument("'inputs' must be a non-empty list of tensors")
    inputs: dict[str, np.ndarray] = {}
    offset = 0
    for given in entries:
        entry = _object(given, "an input")
        name, datatype, shape = entry.get("name"), entry.get("datatype"), entry.get("shape")
        if not isinstance(name, str) or not isinstance(datatype, str):
            raise InvalidArgument("every input needs a string 'name' and 'datatype'")
        if not isinstance(shape, list) or not all(
            isinstance(d, int) and not isinstance(d, bool) for d in shape
        ):
            raise InvalidArgument(f"input '{name}': 'shape' must be a list of integers")
        if name in inputs:
            raise InvalidArgument(f"input '{name}' is given twice")
        size = _object(entry.get("parameters", {}), f"input '{name}' parameters").get(
            "binary_data_size"
        )
        try:
            if size is not None:
                if not isinstance(size, int) or size < 0 or offset + size > len(tail):
                    raise InvalidArgument(
                        f"input '{name}': binary_data_size {size!r} does not fit the "
                        f"{len(tail) - offset} binary bytes left"
                    )
                inputs[name] = v2.decode_raw(datatype, shape, tail[offset : offset + size])
                offset += size
            elif "data" in entry:
                inputs[name] = v2.decode_json(datatype, shape, entry["data"])
            else:
                raise InvalidArgument(f"input '{name}' has neither 'data' nor binary data")
        except TensorError as err:
            raise InvalidArgument(f"input '{name}': {err}") from None
    if offset != len(tail):
        raise InvalidArgument(f"{len(tail) - offset} bytes of binary data belong to no input")
    outputs: list[str] = []
    binary: dict[str, bool] = {}
    for wanted in request.get("outputs") or []:
        entry = _object(wanted, "an output")
        name = entry.get("name")
        if not isinstance(name, str):
            raise InvalidArgument("every requested output needs a string 'name'")
        outputs.append(name)
        flag = _object(entry.get("parameters", {}), f"output '{name}' parameters").get(
            "binary_data"
        )
        if flag is not None:
            binary[name] = _flag(flag, f"output '{name}' parameter 'binary_data'")
    request_id = request.get("id", "")
    if not isinstance(request_id, str):
        raise InvalidArgument(f"'id' must be a string, got {type(request_id).__name__}")
    return HttpInferCall(
        inputs,
        signature,
        outputs,
        binary,
        _flag(params.get("binary_data_output", False), "parameter 'binary_data_output'"),
        request_id,
    )


def _flag(value: Any, what: str) -> bool:
    """A boolean parameter: JSON true or false, nothing else (1.5 is not "true")."""
    if not isinstance(value, bool):
        raise InvalidArgument(f"{what} must be true or false, got {json.dumps(value)[:40]}")
    return value


def _object(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidArgument(f"{what} must be a JSON object")
    return value


def encode_infer(
    model: str, version: int, call: HttpInferCall, outputs: Mapping[str, np.ndarray]
) -> tuple[bytes, int | None]:
    """The response body and, when it carries binary data, the JSON part's length."""
    names = call.outputs or sorted(outputs)
    described: list[dict[str, Any]] = []
    binaries: list[bytes] = []
    for name in names:
        array = outputs[name]
        entry: dict[str, Any] = {
            "name": name,
            "datatype": v2.datatype_of(array),
            "shape": list(array.shape),
        }
        as_binary = call.binary.get(name, call.binary_default)
        if not as_binary:
            data = _json_data(array)
            if data is None:  # BYTES that are not UTF-8 can only go as binary
                as_binary = True
            else:
                entry["data"] = data
        if as_binary:
            raw = v2.encode_raw(array)
            entry["parameters"] = {"binary_data_size": len(raw)}
            binaries.append(raw)
        described.append(entry)
    head: dict[str, Any] = {
        "model_name": model,
        "model_version": str(version),
        "outputs": described,
    }
    if call.request_id:
        head["id"] = call.request_id
    text = json.dumps(head, separators=(",", ":"), allow_nan=True).encode("utf-8")
    if not binaries:
        return text, None
    return text + b"".join(binaries), len(text)


def _json_data(array: np.ndarray) -> list[Any] | None:
    flat = array.reshape(-1)
    if array.dtype.kind in "OSU":
        out = []
        for item in flat.tolist():
            raw = item if isinstance(item, bytes) else str(item).encode("utf-8")
            try:
                out.append(raw.decode("utf-8"))
            except UnicodeDecodeError:
                return None
        return out
    if array.dtype == np.float16:
        flat = flat.astype(np.float32)
    return list(flat.tolist())


def load_force(body: bytes) -> bool:
    """A repository load request's ``parameters.force`` (swapserve's extension: serve the
    version without gates or canary); False for an empty body."""
    if not body.strip():
        return False
    request = _object(json_body.parse(body, "the load request"), "the load request")
    parameters = _object(request.get("parameters", {}), "parameters")
    return _flag(parameters.get("force", False), "parameters.force")
