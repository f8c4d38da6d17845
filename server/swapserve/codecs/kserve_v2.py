"""KServe V2 / Open Inference Protocol messages <-> numpy and the data plane's types.

Datatypes are the protocol's strings ("FP32", "INT64", "BYTES", ...). Tensors arrive either as
typed ``contents`` or as ``raw_input_contents`` (little-endian, row-major; BYTES elements each
prefixed by a 4-byte little-endian length), and the element count is checked against the shape
before anything is allocated.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from swapserve.apis import kserve_v2 as pb
from swapserve.dataplane.types import IndexEntry, State, TensorSpec
from swapserve.errors import InvalidArgument
from swapserve_client.dtypes import TensorError, element_count

# V2 datatype <-> numpy (wire byte order) and the typed contents field that carries it.
_V2: dict[str, tuple[np.dtype[Any], str]] = {
    "BOOL": (np.dtype(np.bool_), "bool_contents"),
    "UINT8": (np.dtype("u1"), "uint_contents"),
    "UINT16": (np.dtype("<u2"), "uint_contents"),
    "UINT32": (np.dtype("<u4"), "uint_contents"),
    "UINT64": (np.dtype("<u8"), "uint64_contents"),
    "INT8": (np.dtype("i1"), "int_contents"),
    "INT16": (np.dtype("<i2"), "int_contents"),
    "INT32": (np.dtype("<i4"), "int_contents"),
    "INT64": (np.dtype("<i8"), "int64_contents"),
    "FP16": (np.dtype("<f2"), ""),  # raw only: the protocol has no typed field for it
    "FP32": (np.dtype("<f4"), "fp32_contents"),
    "FP64": (np.dtype("<f8"), "fp64_contents"),
    "BYTES": (np.dtype(object), "bytes_contents"),
}
# TensorFlow DataType number -> V2 datatype.
_FROM_TF = {
    1: "FP32", 2: "FP64", 3: "INT32", 4: "UINT8", 5: "INT16", 6: "INT8", 7: "BYTES",
    9: "INT64", 10: "BOOL", 14: "BF16", 17: "UINT16", 19: "FP16", 22: "UINT32", 23: "UINT64",
}  # fmt: skip
_MAX_ELEMENTS = 1 << 31


def datatype_of_spec(spec: TensorSpec) -> str:
    """The V2 datatype of a signature tensor ("FP32", ...)."""
    return _FROM_TF.get(spec.dtype, f"DT_{spec.dtype}")


def shape_of_spec(spec: TensorSpec) -> list[int]:
    """The V2 shape of a signature tensor: -1 for any size; [-1] for unknown rank."""
    return [-1] if spec.shape is None else list(spec.shape)


def datatype_of(array: np.ndarray) -> str:
    """The V2 datatype of an array."""
    if array.dtype.kind in "OSU":
        return "BYTES"
    for name, (dtype, _) in _V2.items():
        if dtype.kind == array.dtype.kind and dtype.itemsize == array.dtype.itemsize:
            return name
    raise TensorError(f"numpy dtype {array.dtype} has no V2 datatype")


def _check_shape(datatype: str, shape: list[int]) -> tuple[np.dtype[Any], str, int]:
    if datatype not in _V2:
        raise TensorError(f"unsupported datatype {datatype!r}; supported: {', '.join(_V2)}")
    count = element_count(shape, _MAX_ELEMENTS)
    dtype, field = _V2[datatype]
    return dtype, field, count


def decode_contents(datatype: str, shape: list[int], contents: Any) -> np.ndarray:
    """A tensor from typed ``InferTensorContents``."""
    dtype, field, count = _check_shape(datatype, shape)
    if not field:
        raise TensorError(f"{datatype} tensors must be sent in raw_input_contents")
    values = getattr(contents, field)
    if len(values) != count:
        raise TensorError(f"shape {shape} needs {count} values in {field}, got {len(values)}")
    if datatype == "BYTES":
        out = np.empty(count, dtype=object)
        out[:] = list(values)
        return out.reshape(shape)
    try:
        return np.array(values, dtype=dtype.newbyteorder("=")).reshape(shape)
    except OverflowError as err:
        raise TensorError(f"a value does not fit {datatype}: {err}") from None


def decode_json(datatype: str, shape: list[int], data: Any) -> np.ndarray:
    """A tensor from the HTTP/REST ``data`` field: a flat or nested list in row-major order;
    BYTES elements are strings (UTF-8)."""
    dtype, _, count = _check_shape(datatype, shape)
    flat = _flat(data)
    if len(flat) != count:
        raise TensorError(f"shape {shape} needs {count} values in 'data', got {len(flat)}")
    if datatype == "BYTES":
        if not all(isinstance(v, str) for v in flat):
            raise TensorError(
                "BYTES 'data' must be strings (send binary data with the binary tensor extension)"
            )
        out = np.empty(count, dtype=object)
        out[:] = [v.encode("utf-8") for v in flat]
        return out.reshape(shape)
    if any(isinstance(v, (str, dict, list)) or v is None for v in flat):
        raise TensorError(f"{datatype} 'data' must be numbers")
    if datatype == "BOOL" and not all(isinstance(v, bool) for v in flat):
        raise TensorError("BOOL 'data' must be true or false")
    if dtype.kind in "iu" and not all(
        isinstance(v, int) or (isinstance(v, float) and v.is_integer()) for v in flat
    ):
        raise TensorError(f"{datatype} 'data' must be integers")
    try:
        with np.errstate(over="ignore"):  # a float past its range: infinity
            return np.array(flat, dtype=dtype.newbyteorder("=")).reshape(shape)
    except (OverflowError, ValueError, TypeError) as err:
        raise TensorError(f"a value does not fit {datatype}: {err}") from None


def _flat(data: Any, limit: int = 64) -> list[Any]:
    """The elements of a (nested) list in row-major order, without recursion."""
    if not isinstance(data, list):
        raise TensorError("'data' must be a list")
    return _flat_in_order(data, limit)


def _flat_in_order(data: list[Any], limit: int) -> list[Any]:
    out: list[Any] = []
    iters = [iter(data)]
    while iters:
        if len(iters) > limit:
            raise TensorError(f"'data' is nested deeper than {limit} levels")
        for item in iters[-1]:
            if isinstance(item, list):
                iters.append(iter(item))
                break
            out.append(item)
        else:
            iters.pop()
    return out


def decode_raw(datatype: str, shape: list[int], raw: bytes) -> np.ndarray:
    """A tensor from one ``raw_input_contents`` entry."""
    dtype, _, count = _check_shape(datatype, shape)
    if datatype != "BYTES":
        if len(raw) != count * dtype.itemsize:
            raise TensorError(
                f"raw content has {len(raw)} bytes but shape {shape} of {datatype} needs "
                f"{count * dtype.itemsize}"
            )
        array = np.frombuffer(raw, dtype=dtype).reshape(shape)
        return array.astype(dtype.newbyteorder("="), copy=False)
    items = []
    offset = 0
    while offset < len(raw):
        if offset + 4 > len(raw):
            raise TensorError("raw BYTES content ends inside a length prefix")
        (size,) = struct.unpack_from("<I", raw, offset)
        offset += 4
        if offset + size > len(raw):
            raise TensorError("raw BYTES content ends inside an element")
        items.append(raw[offset : offset + size])
        offset += size
    if len(items) != count:
        raise TensorError(
            f"shape {shape} needs {count} BYTES elements, raw content has {len(items)}"
        )
    out = np.empty(count, dtype=object)
    out[:] = items
    return out.reshape(shape)


def encode_raw(array: np.ndarray) -> bytes:
    """One ``raw_output_contents`` entry."""
    if array.dtype.kind in "OSU":
        parts = []
        for item in array.reshape(-1):
            value = item if isinstance(item, bytes) else str(item).encode()
            parts.append(struct.pack("<I", len(value)))
            parts.append(value)
        return b"".join(parts)
    wire = array.dtype.newbyteorder("<") if array.dtype.byteorder != "|" else array.dtype
    return np.ascontiguousarray(array, dtype=wire).tobytes()


def encode_contents(array: np.ndarray, contents: Any) -> None:
    """Fills typed ``InferTensorContents`` (FP16 has no typed field: use raw)."""
    datatype = datatype_of(array)
    field = _V2[datatype][1]
    if not field:
        raise TensorError(f"{datatype} outputs can only be returned raw")
    flat = array.reshape(-1)
    if datatype == "BYTES":
        getattr(contents, field).extend(
            x if isinstance(x, bytes) else str(x).encode() for x in flat
        )
    else:
        getattr(contents, field).extend(flat.tolist())


# ---- whole messages ------------------------------------------------------------------------------

_STATE_NAMES = {  # our version states -> the repository index's state strings
    State.AVAILABLE: "READY",
    State.LOADING: "LOADING",
    State.UNLOADING: "UNLOADING",
    State.FAILED: "UNAVAILABLE",
    State.END: "UNAVAILABLE",
    State.START: "UNAVAILABLE",
}


@dataclass(frozen=True)
class InferCall:
    """A decoded ``ModelInferRequest``."""

    inputs: dict[str, np.ndarray]
    signature: str
    outputs: list[str]
    version: int
    label: str
    raw: bool
    """The inputs came as ``raw_input_contents`` (answer raw too)."""


def parse_version(text: str) -> tuple[int, str]:
    """``model_version`` as (version, label): a number, a version label, or empty (served)."""
    if text.isascii() and text.isdigit():  # not "²": isdigit alone takes it, int() does not
        return int(text), ""
    return 0, text


def decode_infer_request(request: pb.ModelInferRequest) -> InferCall:
    """Every input of a ModelInferRequest, typed or raw (not both), with the requested outputs,
    signature (``signature_name`` parameter) and version.

    Raises:
        InvalidArgument: naming the input that cannot be decoded.
    """
    raw = list(request.raw_input_contents)
    if raw and len(raw) != len(request.inputs):
        raise InvalidArgument(
            f"raw_input_contents has {len(raw)} entries for {len(request.inputs)} inputs; "
            "use raw contents for every input or for none"
        )
    inputs = {}
    for i, tensor in enumerate(request.inputs):
        if tensor.name in inputs:
            raise InvalidArgument(f"input '{tensor.name}' is given twice")
        try:
            if raw:
                if tensor.HasField("contents"):
                    raise TensorError("has both contents and raw_input_contents")
                array = decode_raw(tensor.datatype, list(tensor.shape), raw[i])
            else:
                array = decode_contents(tensor.datatype, list(tensor.shape), tensor.contents)
        except TensorError as err:
            raise InvalidArgument(f"input '{tensor.name}': {err}") from None
        inputs[tensor.name] = array
    param = request.parameters.get("signature_name")
    version, label = parse_version(request.model_version)
    return InferCall(
        inputs=inputs,
        signature=param.string_param if param is not None else "",
        outputs=[o.name for o in request.outputs],
        version=version,
        label=label,
        raw=bool(raw),
    )


def encode_infer_response(
    model: str, request_id: str, call: InferCall, outputs: dict[str, np.ndarray], version: int
) -> pb.ModelInferResponse:
    """The response in the request's encoding: raw for raw (tritonclient), typed for typed.
    FP16 has no typed field and encodings may not be mixed, so any FP16 output makes all raw."""
    response = pb.ModelInferResponse(model_name=model, model_version=str(version), id=request_id)
    names = call.outputs or sorted(outputs)
    datatypes = {n: datatype_of(outputs[n]) for n in names}
    use_raw = call.raw or "FP16" in datatypes.values()
    for name in names:
        array = outputs[name]
        out = response.outputs.add(name=name, datatype=datatypes[name], shape=list(array.shape))
        if use_raw:
            response.raw_output_contents.append(encode_raw(array))
        else:
            encode_contents(array, out.contents)
    return response


def tensor_metadata(spec: TensorSpec) -> pb.ModelMetadataResponse.TensorMetadata:
    """A signature tensor as ModelMetadata lists it."""
    return pb.ModelMetadataResponse.TensorMetadata(
        name=spec.name, datatype=datatype_of_spec(spec), shape=shape_of_spec(spec)
    )


def index_row(entry: IndexEntry) -> dict[str, str]:
    """One repository index row's fields (``name``, ``version``, ``state``, ``reason``), the
    empty ones left out (as JSON over HTTP shows them)."""
    if entry.version is None:
        return {
            "name": entry.name,
            "state": "UNAVAILABLE",
            "reason": entry.problem or "no version in the export root",
        }
    row = {
        "name": entry.name,
        "version": str(entry.version.version),
        "state": _STATE_NAMES[entry.version.state],
        "reason": "; ".join(r for r in (entry.version.error, entry.problem) if r),
    }
    return {k: v for k, v in row.items() if v}


def index_entry(entry: IndexEntry, out: pb.RepositoryIndexResponse.ModelIndex) -> None:
    """One repository index row (gRPC)."""
    for key, value in index_row(entry).items():
        setattr(out, key, value)


def load_force(parameters: Mapping[str, Any]) -> bool:
    """A RepositoryModelLoad's ``force`` parameter (a bool_param; swapserve's extension: serve
    the version without gates or canary)."""
    param = parameters.get("force")
    if param is None:
        return False
    if param.WhichOneof("parameter_choice") != "bool_param":
        raise InvalidArgument("parameter 'force' must be a bool_param")
    return bool(param.bool_param)
