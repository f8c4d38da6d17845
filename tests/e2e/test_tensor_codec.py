"""The TF Serving codec reads ``TensorProto`` without TensorFlow: over random dtypes, shapes and
encodings (``tensor_content``, typed values, a short typed list padded with its last value) it
gives exactly what ``tf.make_ndarray`` gives, and encodes what TensorFlow decodes back."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from swapserve.apis import tfserving as api
from swapserve.codecs import tfserving as codec
from swapserve_client.dtypes import TensorError

# DataType -> (numpy dtype, the typed field, how values are drawn)
_NUMBERS = {
    1: (np.float32, st.floats(width=32, allow_nan=False)),
    2: (np.float64, st.floats(allow_nan=False)),
    3: (np.int32, st.integers(-(2**31), 2**31 - 1)),
    4: (np.uint8, st.integers(0, 255)),
    5: (np.int16, st.integers(-(2**15), 2**15 - 1)),
    6: (np.int8, st.integers(-128, 127)),
    9: (np.int64, st.integers(-(2**63), 2**63 - 1)),
    10: (np.bool_, st.booleans()),
    17: (np.uint16, st.integers(0, 2**16 - 1)),
    19: (np.float16, st.floats(width=16, allow_nan=False)),
    22: (np.uint32, st.integers(0, 2**32 - 1)),
    23: (np.uint64, st.integers(0, 2**64 - 1)),
}
_SHAPES = st.lists(st.integers(1, 4), min_size=0, max_size=3)


def _typed(proto: api.TensorProto, dtype: int, values: list[object]) -> None:
    """Fills the typed field as TensorFlow's ``make_tensor_proto`` does."""
    field = codec._VALUE_FIELDS[dtype]
    if dtype == 19:
        bits = np.array(values, np.float16).view(np.uint16)
        proto.half_val.extend(int(b) for b in bits)
    else:
        getattr(proto, field).extend(values)


def _reference(proto: api.TensorProto) -> np.ndarray:
    from tensorflow.core.framework import tensor_pb2

    return tf.make_ndarray(tensor_pb2.TensorProto.FromString(proto.SerializeToString()))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_decoding_matches_tensorflow(data: st.DataObject) -> None:
    dtype = data.draw(st.sampled_from(sorted(_NUMBERS)))
    np_dtype, values = _NUMBERS[dtype]
    shape = data.draw(_SHAPES)
    count = int(np.prod(shape))
    encoding = data.draw(st.sampled_from(["content", "typed", "short"]))
    proto = api.TensorProto(dtype=dtype)
    proto.tensor_shape.dim.extend(api.TensorShapeProto.Dim(size=d) for d in shape)
    drawn = data.draw(st.lists(values, min_size=count, max_size=count))
    if encoding == "content":
        proto.tensor_content = np.array(drawn, np_dtype).tobytes()
    else:
        given_count = count if encoding == "typed" else data.draw(st.integers(1, count))
        _typed(proto, dtype, drawn[:given_count])
    ours, theirs = codec.decode_tensor(proto), _reference(proto)
    assert ours.dtype == theirs.dtype and ours.shape == theirs.shape
    np.testing.assert_array_equal(ours, theirs)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.binary(max_size=8), min_size=1, max_size=6), st.integers(1, 8))
def test_strings_and_padding_match_tensorflow(values: list[bytes], extra: int) -> None:
    proto = api.TensorProto(dtype=7)
    proto.tensor_shape.dim.add(size=len(values) + extra)
    proto.string_val.extend(values)
    ours, theirs = codec.decode_tensor(proto), _reference(proto)
    assert ours.dtype == object and list(ours) == list(theirs)


@pytest.mark.parametrize(("dtype", "np_dtype"), [(8, np.complex64), (18, np.complex128)])
def test_complex_pairs_match_tensorflow(dtype: int, np_dtype: type) -> None:
    proto = api.TensorProto(dtype=dtype)
    proto.tensor_shape.dim.add(size=3)
    field = "scomplex_val" if dtype == 8 else "dcomplex_val"
    getattr(proto, field).extend([1.0, 2.0, -3.5, 0.25, 7.0, -1.0])
    np.testing.assert_array_equal(codec.decode_tensor(proto), _reference(proto))


@settings(max_examples=100, deadline=None)
@given(st.data())
def test_encoding_decodes_back_in_tensorflow(data: st.DataObject) -> None:
    dtype = data.draw(st.sampled_from(sorted(_NUMBERS)))
    np_dtype, values = _NUMBERS[dtype]
    shape = data.draw(_SHAPES)
    drawn = data.draw(st.lists(values, min_size=int(np.prod(shape)), max_size=int(np.prod(shape))))
    array = np.array(drawn, np_dtype).reshape(shape)
    proto = api.TensorProto()
    codec.encode_tensor(array, proto)
    assert proto.dtype == dtype
    np.testing.assert_array_equal(_reference(proto), array)


def test_a_value_out_of_its_dtypes_range_is_refused() -> None:
    proto = api.TensorProto(dtype=6)  # int8
    proto.tensor_shape.dim.add(size=1)
    proto.int_val.append(1000)
    with pytest.raises(TensorError, match="int_val does not fit DT_INT8"):
        codec.decode_tensor(proto)
