"""DataType numbers <-> numpy dtypes, and checked element counts. numpy only: no protobuf.

The numbers are TensorFlow's ``DataType`` enum (``tensorflow/core/framework/types.proto``), which
``swapserve.v1.DataType`` repeats. The server's model core imports this module, so it must never
import generated protobuf code or grpc (a test imports the core without them).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

__all__ = [
    "DTYPE_NAMES",
    "DT_STRING",
    "TensorError",
    "dtype_name",
    "element_count",
    "numpy_dtype",
    "proto_dtype",
]

DT_STRING = 7

DTYPE_NAMES: dict[int, str] = {
    0: "DT_INVALID", 1: "DT_FLOAT", 2: "DT_DOUBLE", 3: "DT_INT32", 4: "DT_UINT8", 5: "DT_INT16",
    6: "DT_INT8", 7: "DT_STRING", 8: "DT_COMPLEX64", 9: "DT_INT64", 10: "DT_BOOL",
    14: "DT_BFLOAT16", 17: "DT_UINT16", 18: "DT_COMPLEX128", 19: "DT_HALF", 22: "DT_UINT32",
    23: "DT_UINT64",
}  # fmt: skip

# DataType number -> numpy dtype (little-endian, as on the wire).
_TO_NUMPY: dict[int, np.dtype[np.generic]] = {
    1: np.dtype("<f4"),
    2: np.dtype("<f8"),
    3: np.dtype("<i4"),
    4: np.dtype("u1"),
    5: np.dtype("<i2"),
    6: np.dtype("i1"),
    DT_STRING: np.dtype(object),
    8: np.dtype("<c8"),
    9: np.dtype("<i8"),
    10: np.dtype(np.bool_),
    17: np.dtype("<u2"),
    18: np.dtype("<c16"),
    19: np.dtype("<f2"),
    22: np.dtype("<u4"),
    23: np.dtype("<u8"),
}
# numpy kind+itemsize -> DataType number; strings (object, bytes, str arrays) handled separately.
_FROM_NUMPY: dict[tuple[str, int], int] = {
    (dt.kind, dt.itemsize): num for num, dt in _TO_NUMPY.items() if dt.kind != "O"
}


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
        return DT_STRING
    try:
        return _FROM_NUMPY[(dt.kind, dt.itemsize)]
    except KeyError:
        raise TensorError(f"numpy dtype {dt} has no swapserve DataType") from None


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
