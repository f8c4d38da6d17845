"""numpy <-> swapserve.v1.Tensor conversion, shared by the client and the server.

The wire format is deliberately simple so that any language can produce it: numeric tensors are
one little-endian row-major buffer in ``tensor_content``; strings are one ``string_val`` entry per
element. Decoding checks the buffer against ``shape`` x ``dtype`` before any array is built, so a
malformed tensor is a clear error, never a crash or a silently reshaped array.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping

import numpy as np
import numpy.typing as npt

from swapserve_client._proto.swapserve.v1 import prediction_pb2 as pb
from swapserve_client.dtypes import (
    DTYPE_NAMES,
    TensorError,
    dtype_name,
    element_count,
    numpy_dtype,
    proto_dtype,
)

__all__ = [
    "DTYPE_NAMES",
    "TensorError",
    "decode",
    "decode_map",
    "dtype_name",
    "element_count",
    "encode",
    "encode_map",
    "numpy_dtype",
    "proto_dtype",
]

# A hostile shape must not make us allocate before the length check: cap the element count.
_MAX_ELEMENTS = 1 << 40


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
