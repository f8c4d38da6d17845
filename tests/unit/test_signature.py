"""Request validation against a signature, without TensorFlow or gRPC."""

from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from swapserve.config.model_settings import DeclaredConfig, TensorDeclaration
from swapserve.errors import FailedPrecondition, InvalidArgument
from swapserve.model.signature import (
    SignatureSpec,
    TensorSpec,
    declared_mismatch,
    unknown_signature,
)

SIG = SignatureSpec(
    name="serving_default",
    method_name="tensorflow/serving/predict",
    inputs={
        "any": TensorSpec("any", "any:0", 1, None),
        "img": TensorSpec("img", "img:0", 4, (-1, 2, 3)),
        "text": TensorSpec("text", "text:0", 7, (-1,)),
    },
    outputs={"a": TensorSpec("a", "a:0", 1, (-1,)), "b": TensorSpec("b", "b:0", 9, ())},
)


def good() -> dict[str, np.ndarray]:
    return {
        "any": np.zeros([2, 2, 2], np.float32),
        "img": np.zeros([5, 2, 3], np.uint8),
        "text": np.array([b"a", b"b"], dtype=object),
    }


def test_valid_request_passes() -> None:
    SIG.validate(good())
    SIG.validate({**good(), "any": np.float32(3)})  # unknown rank takes a scalar too
    SIG.validate({**good(), "text": np.array([b"a"])})  # numpy bytes arrays are strings


def test_trailing_dimensions_of_size_one_may_be_left_out() -> None:
    """TF Serving feeds ``[3]`` to a ``[-1, 1]`` input (its REST example relies on it)."""
    ones = SignatureSpec("s", "m", {"x": TensorSpec("x", "x:0", 1, (-1, 1, 1))}, SIG.outputs)
    for shape in ([3], [3, 1], [3, 1, 1]):
        ones.validate({"x": np.zeros(shape, np.float32)})
    for shape, words in (
        ([], "has shape [] (rank 0)"),  # nothing is left to hold the rows
        ([3, 2], "has shape [3, 2] (rank 2)"),  # a left-out dimension must have size 1
        ([3, 1, 1, 1], "has shape [3, 1, 1, 1] (rank 4)"),  # only left out, never added
    ):
        with pytest.raises(InvalidArgument, match=re.escape(words)):
            ones.validate({"x": np.zeros(shape, np.float32)})
    with pytest.raises(InvalidArgument, match=re.escape("has shape [5, 2] (rank 2)")):
        SIG.validate({**good(), "img": np.zeros([5, 2], np.uint8)})  # dims of 3 are not ones


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"img": np.zeros([5, 2, 3], np.int8)},
            "input 'img' of signature 'serving_default' has dtype DT_INT8 but DT_UINT8 is expected",
        ),
        (
            {"img": np.zeros([5, 3, 2], np.uint8)},
            "input 'img' of signature 'serving_default' has shape [5, 3, 2]: dimension 1 is 3 but 2 "
            "is expected (shape [-1, 2, 3])",
        ),
        (
            {"text": np.zeros([2], np.float32)},
            "input 'text' of signature 'serving_default' has dtype DT_FLOAT but DT_STRING is expected",
        ),
        (
            {"extra": np.zeros(1)},
            "unknown input 'extra' for signature 'serving_default'; its inputs are 'any', 'img', 'text'",
        ),
    ],
)
def test_invalid_inputs(change: dict[str, np.ndarray], message: str) -> None:
    with pytest.raises(InvalidArgument) as exc:
        SIG.validate({**good(), **change})
    assert exc.value.message == message
    assert exc.value.status == "INVALID_ARGUMENT"


def test_missing_input() -> None:
    inputs = good()
    del inputs["img"]
    with pytest.raises(
        InvalidArgument, match=r"missing input 'img' .*expects DT_UINT8 \[-1, 2, 3\]"
    ):
        SIG.validate(inputs)


def test_output_selection() -> None:
    assert SIG.select_outputs([]) == ("a", "b")
    assert SIG.select_outputs(["b", "a"]) == ("a", "b")
    with pytest.raises(InvalidArgument, match="unknown output 'c'"):
        SIG.select_outputs(["c"])


def test_unknown_signature_is_failed_precondition() -> None:
    err = unknown_signature("x", ["b", "a"])
    assert isinstance(err, FailedPrecondition)
    assert err.message == "signature 'x' not found; this model version has 'a', 'b'"


def _fresh() -> SignatureSpec:
    """SIG without any accepted (dtype, shape) remembered."""
    return SignatureSpec(SIG.name, SIG.method_name, SIG.inputs, SIG.outputs)


def _outcome(spec: SignatureSpec, inputs: dict[str, np.ndarray]) -> str:
    try:
        spec.validate(inputs)
    except InvalidArgument as err:
        return err.message
    return "ok"


_DTYPES = [np.float32, np.float64, np.uint8, np.int32, object]


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["img", "any", "text"]),
            st.sampled_from(_DTYPES),
            st.lists(st.integers(0, 4), max_size=4),
            st.booleans(),  # drop the input (a missing name)
        ),
        min_size=1,
        max_size=30,
    )
)
def test_remembered_shapes_answer_as_a_full_check_does(
    changes: list[tuple[str, type, list[int], bool]],
) -> None:
    """Validation remembers accepted (dtype, shape) pairs; every answer stays the one a spec
    that never saw a request gives."""
    remembering = _fresh()
    for name, dtype, shape, drop in changes:
        inputs = good()
        if drop:
            del inputs[name]
        else:
            inputs[name] = np.zeros(shape, dtype)
        assert _outcome(remembering, inputs) == _outcome(_fresh(), inputs)


def test_remembered_shapes_are_bounded_per_input() -> None:
    spec = _fresh()
    for rows in range(200):
        spec.validate({**good(), "img": np.zeros([rows, 2, 3], np.uint8)})
    assert max(len(seen) for seen in spec._accepted.values()) <= 64
    with pytest.raises(InvalidArgument, match="dimension 1 is 3 but 2"):
        spec.validate({**good(), "img": np.zeros([5, 3, 3], np.uint8)})
    with pytest.raises(InvalidArgument, match="unknown input"):
        spec.validate({**good(), "extra": np.zeros([1])})


@pytest.mark.parametrize(
    ("declared", "batch_dim", "words"),
    [
        ((TensorDeclaration("img", 4, (2, 3)),), True, ""),
        ((TensorDeclaration("img", 4, (-1, 2, 3)),), False, ""),
        ((TensorDeclaration("any", 1, (7, 7, 7, 7)), TensorDeclaration("b", 9, (), output=True)), False, ""),
        ((TensorDeclaration("a", 0, (-1,), output=True),), False, ""),  # no type: any
        ((TensorDeclaration("x", 1, (1,)),), False,
         "input 'x' is declared but signature 'serving_default' has inputs ['any', 'img', "
         "'text']"),
        ((TensorDeclaration("img", 1, (2, 3)),), True,
         "input 'img' is declared DT_FLOAT but signature 'serving_default' has DT_UINT8 "
         "[-1, 2, 3]"),
        ((TensorDeclaration("img", 4, (2, 4)),), True,
         "input 'img' is declared with dims [2, 4] after the batch dimension (max_batch_size > "
         "0) but signature 'serving_default' has DT_UINT8 [-1, 2, 3]"),
        ((TensorDeclaration("img", 4, (2, 3)),), False, "declared with dims [2, 3] but"),
        ((TensorDeclaration("b", 9, (1,), output=True),), False,
         "output 'b' is declared with dims [1]"),
    ],
)  # fmt: skip
def test_a_config_s_declared_tensors_are_checked_against_the_signature(
    declared: tuple[TensorDeclaration, ...], batch_dim: bool, words: str
) -> None:
    problem = declared_mismatch(SIG, DeclaredConfig(declared, batch_dim))
    assert (words in problem) if words else problem == "", problem
