"""numpy <-> Tensor conversion (client and server share it)."""

from __future__ import annotations

import numpy as np
import pytest

from swapserve_client import tensors
from swapserve_client._proto.swapserve.v1 import prediction_pb2 as pb

NUMERIC = [
    np.float32,
    np.float64,
    np.float16,
    np.int8,
    np.int16,
    np.int32,
    np.int64,
    np.uint8,
    np.uint16,
    np.uint32,
    np.uint64,
    np.bool_,
    np.complex64,
    np.complex128,
]


@pytest.mark.parametrize("dtype", NUMERIC)
@pytest.mark.parametrize("shape", [(), (0,), (3,), (2, 3, 4)])
def test_numeric_round_trip(dtype: type, shape: tuple[int, ...]) -> None:
    rng = np.random.default_rng(0)
    array = (rng.standard_normal(shape) * 10).astype(dtype)
    tensor = tensors.encode(array)
    assert list(tensor.shape) == list(shape)
    assert len(tensor.tensor_content) == array.nbytes
    back = tensors.decode(tensor)
    assert back.dtype == array.dtype and back.shape == array.shape
    np.testing.assert_array_equal(back, array)


def test_dtype_numbers_are_tensorflows() -> None:
    assert tensors.encode(np.float32(1)).dtype == 1 == pb.DT_FLOAT
    assert tensors.proto_dtype(np.int64) == 9
    assert tensors.proto_dtype(np.bool_) == 10
    assert tensors.proto_dtype(np.float16) == 19
    assert tensors.proto_dtype(np.dtype("S3")) == 7


def test_wire_is_little_endian_row_major() -> None:
    big = np.array([[1, 2], [3, 4]], dtype=">i4")
    tensor = tensors.encode(big)
    assert tensor.tensor_content == np.array([1, 2, 3, 4], "<i4").tobytes()
    np.testing.assert_array_equal(tensors.decode(tensor), big)
    fortran = np.asfortranarray(np.arange(6, dtype=np.float32).reshape(2, 3))
    assert tensors.encode(fortran).tensor_content == np.arange(6, dtype="<f4").tobytes()


def test_strings() -> None:
    tensor = tensors.encode(np.array([["a", "é"], ["", "x"]]))
    assert tensor.dtype == pb.DT_STRING
    assert list(tensor.string_val) == [b"a", "é".encode(), b"", b"x"]
    back = tensors.decode(tensor)
    assert back.dtype == object and back.shape == (2, 2)
    assert back[0, 1] == "é".encode()
    assert list(tensors.encode([b"\x00\xff"]).string_val) == [b"\x00\xff"]


@pytest.mark.parametrize(
    ("tensor", "message"),
    [
        (
            pb.Tensor(dtype=pb.DT_INT32, shape=[3], tensor_content=b"\0" * 8),
            "tensor_content has 8 bytes but shape [3] of DT_INT32 needs 12 (3 x 4)",
        ),
        (pb.Tensor(dtype=pb.DT_FLOAT, shape=[-1]), "shape [-1] has a negative dimension"),
        (
            pb.Tensor(dtype=pb.DT_FLOAT, shape=[0, 2**40, 2**40]),
            "shape [0, 1099511627776, 1099511627776] has too many elements (at most 1099511627776)",
        ),
        (pb.Tensor(dtype=pb.DT_STRING, shape=[1]), "shape [1] needs 1 string_val entries, got 0"),
        (
            pb.Tensor(dtype=pb.DT_STRING, shape=[1], string_val=[b"a"], tensor_content=b"a"),
            "DT_STRING values go in string_val, not tensor_content",
        ),
        (
            pb.Tensor(dtype=pb.DT_BFLOAT16, shape=[1], tensor_content=b"\0\0"),
            "unsupported dtype DT_BFLOAT16",
        ),
    ],
)
def test_decode_errors(tensor: pb.Tensor, message: str) -> None:
    with pytest.raises(tensors.TensorError, match=None) as exc:
        tensors.decode(tensor)
    assert str(exc.value) == message


def test_encode_errors_name_the_tensor() -> None:
    request = pb.PredictRequest()
    with pytest.raises(tensors.TensorError) as exc:
        tensors.encode_map(
            {"when": np.array(["2020-01-01"], dtype="datetime64[D]")}, request.inputs
        )
    assert str(exc.value).startswith("tensor 'when': numpy dtype datetime64[D] has no")
    with pytest.raises(tensors.TensorError) as exc:
        tensors.encode(np.array([1, "a"], dtype=object))
    assert "neither bytes nor str" in str(exc.value)
