"""numpy <-> swapserve.v1.Tensor conversion, shared by the client and the server.

The wire format is deliberately simple so that any language can produce it: numeric tensors are
one little-endian row-major buffer in ``tensor_content``; strings are one ``string_val`` entry per
element. Decoding checks the buffer against ``shape`` x ``dtype`` before any array is built, so a
malformed tensor is a clear error, never a crash or a silently reshaped array.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, MutableMapping, Sequence

import numpy as np
import numpy.typing as npt

from swapserve_client._proto.swapserve.v1 import prediction_pb2 as pb

__all__ = [
    "DTYPE_NAMES",
    "TensorError",
    "decode",
    "decode_map",
    "dtype_name",
    "encode",
    "encode_map",
    "numpy_dtype",
    "proto_dtype",
]

# DataType number -> numpy dtype (little-endian, as on the wire).
_TO_NUMPY: dict[int, np.dtype[np.generic]] = {
    pb.DT_FLOAT: np.dtype("<f4"),
    pb.DT_DOUBLE: np.dtype("<f8"),
    pb.DT_INT32: np.dtype("<i4"),
    pb.DT_UINT8: np.dtype("u1"),
    pb.DT_INT16: np.dtype("<i2"),
    pb.DT_INT8: np.dtype("i1"),
    pb.DT_STRING: np.dtype(object),
    pb.DT_COMPLEX64: np.dtype("<c8"),
    pb.DT_INT64: np.dtype("<i8"),
    pb.DT_BOOL: np.dtype(np.bool_),
    pb.DT_UINT16: np.dtype("<u2"),
    pb.DT_COMPLEX128: np.dtype("<c16"),
    pb.DT_HALF: np.dtype("<f2"),
    pb.DT_UINT32: np.dtype("<u4"),
    pb.DT_UINT64: np.dtype("<u8"),
}
# numpy kind+itemsize -> DataType number; strings (object, bytes, str arrays) handled separately.
_FROM_NUMPY: dict[tuple[str, int], int] = {
    (dt.kind, dt.itemsize): num for num, dt in _TO_NUMPY.items() if dt.kind != "O"
}

DTYPE_NAMES: dict[int, str] = {
    v.number: v.name for v in pb.DESCRIPTOR.enum_types_by_name["DataType"].values
}

# A hostile shape must not make us allocate before the length check: cap the element count.
_MAX_ELEMENTS = 1 << 40


class TensorError(ValueError):
    """A tensor that cannot be converted; the message says what is wrong with it."""


def dtype_name(dtype: int) -> str:
    """The DataType's name (``DT_FLOAT``), or ``DT_<number>`` for numbers we do not know."""
    return DTYPE_NAMES.get(dtype, f"DT_{dtype}")


def numpy_dtype(dtype: int) -> np.dtype[np.generic]:
    """The numpy dtype for a DataType number; strings map to ``object`` (elements are bytes)."""
    try:
        return _TO_NUMPY[dtype]
    except KeyError:
        raise TensorError(f"unsupported dtype {dtype_name(dtype)}") from None


def proto_dtype(dtype: npt.DTypeLike) -> int:
    """The DataType number for a numpy dtype; bytes, str and object arrays are DT_STRING."""
    dt = np.dtype(dtype)
    if dt.kind in "OSU":
        return pb.DT_STRING
    try:
        return _FROM_NUMPY[(dt.kind, dt.itemsize)]
    except KeyError:
        raise TensorError(f"numpy dtype {dt} has no swapserve DataType") from None


def encode(array: npt.ArrayLike, out: pb.Tensor | None = None) -> pb.Tensor:
    """Encodes an array (or anything ``np.asarray`` accepts) as a Tensor.

    Args:
        array: the values; ``str`` elements are encoded as UTF-8.
        out: a message to fill in place (e.g. an entry of a request's map), else a new one.

    Returns:
        The filled Tensor.
    """
    arr = np.asarray(array)
    tensor = pb.Tensor() if out is None else out
    tensor.dtype = proto_dtype(arr.dtype)  # type: ignore[assignment]
    tensor.shape[:] = arr.shape
    if tensor.dtype == pb.DT_STRING:
        tensor.string_val.extend(_to_bytes(x) for x in arr.reshape(-1))
    else:
        wire = arr.dtype.newbyteorder("<") if arr.dtype.byteorder not in "|" else arr.dtype
        tensor.tensor_content = np.ascontiguousarray(arr, dtype=wire).tobytes()
    return tensor


def _to_bytes(value: object) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, np.bytes_ | np.str_):
        return _to_bytes(value.item())
    raise TensorError(f"string tensor element {value!r} is neither bytes nor str")


def element_count(shape: Sequence[int], limit: int) -> int:
    """The number of elements of ``shape``, checked: no negative dimension, at most ``limit``
    elements, and a shape numpy can hold (``[0, 2**40, 2**40]`` has no elements but is refused:
    numpy could not reshape to it).

    Raises:
        TensorError: naming the shape.
    """
    if any(d < 0 for d in shape):
        raise TensorError(f"shape {list(shape)} has a negative dimension")
    count = math.prod(shape)
    if count > limit or math.prod(max(d, 1) for d in shape) > limit:
        raise TensorError(f"shape {list(shape)} has too many elements (at most {limit})")
    return count


def decode(tensor: pb.Tensor) -> np.ndarray:
    """Decodes a Tensor into a numpy array without copying numeric buffers.

    Raises:
        TensorError: unknown dtype, negative dimension, or a buffer / string count that does not
            match the shape.
    """
    dtype = numpy_dtype(tensor.dtype)
    shape = tuple(tensor.shape)
    count = element_count(shape, _MAX_ELEMENTS)
    if tensor.dtype == pb.DT_STRING:
        if tensor.tensor_content:
            raise TensorError("DT_STRING values go in string_val, not tensor_content")
        if len(tensor.string_val) != count:
            raise TensorError(
                f"shape {list(shape)} needs {count} string_val entries, "
                f"got {len(tensor.string_val)}"
            )
        out = np.empty(count, dtype=object)
        out[:] = list(tensor.string_val)
        return out.reshape(shape)
    if tensor.string_val:
        raise TensorError(f"{dtype_name(tensor.dtype)} values go in tensor_content, not string_val")
    expected = count * dtype.itemsize
    if len(tensor.tensor_content) != expected:
        raise TensorError(
            f"tensor_content has {len(tensor.tensor_content)} bytes but shape {list(shape)} of "
            f"{dtype_name(tensor.dtype)} needs {expected} ({count} x {dtype.itemsize})"
        )
    arr = np.frombuffer(tensor.tensor_content, dtype=dtype).reshape(shape)
    native = dtype.newbyteorder("=")
    return arr if arr.dtype == native else arr.astype(native)


def decode_map(tensors: Mapping[str, pb.Tensor], what: str = "tensor") -> dict[str, np.ndarray]:
    """Decodes every entry; an error names the entry it came from (``input 'x': ...``)."""
    out = {}
    for name, tensor in tensors.items():
        try:
            out[name] = decode(tensor)
        except TensorError as err:
            raise TensorError(f"{what} '{name}': {err}") from None
    return out


def encode_map(arrays: Mapping[str, npt.ArrayLike], into: MutableMapping[str, pb.Tensor]) -> None:
    """Encodes every entry of ``arrays`` into a message's map field; errors name the entry."""
    for name, array in arrays.items():
        try:
            encode(array, out=into[name])
        except TensorError as err:
            raise TensorError(f"tensor '{name}': {err}") from None
