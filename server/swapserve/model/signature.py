"""Signature specs and request validation, independent of TensorFlow and gRPC.

A request is checked against the signature before TensorFlow sees it, so a bad request gets a
message naming the input and what was expected rather than a graph-level error.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from swapserve.config.model_settings import DeclaredConfig
from swapserve.errors import FailedPrecondition, InvalidArgument
from swapserve_client.dtypes import TensorError, dtype_name, numpy_dtype, proto_dtype

DEFAULT_SIGNATURE = "serving_default"
_ACCEPTED_MAX = 64


@dataclass(frozen=True)
class TensorSpec:
    """One signature input or output.

    Attributes:
        name: the signature's key for it (what clients send).
        tensor_name: the graph tensor it feeds or fetches (``x:0``).
        dtype: DataType number (TensorFlow's, reference types already resolved).
        shape: dimensions with -1 for "any size", or None for unknown rank.
    """

    name: str
    tensor_name: str
    dtype: int
    shape: tuple[int, ...] | None

    def describe(self) -> str:
        """``DT_FLOAT [-1, 1]``, for error messages."""
        shape = "any shape" if self.shape is None else str(list(self.shape))
        return f"{dtype_name(self.dtype)} {shape}"


@dataclass(frozen=True)
class SignatureSpec:
    """A signature's inputs and outputs, sorted by name."""

    name: str
    method_name: str
    inputs: Mapping[str, TensorSpec]
    outputs: Mapping[str, TensorSpec]

    _accepted: dict[str, set[tuple[np.dtype[Any], tuple[int, ...]]]] = field(
        init=False, repr=False, compare=False
    )
    """(dtype, shape) pairs already accepted, by input name: the check depends on nothing else,
    so a request like an earlier one is checked with one set lookup per input. Every name is a
    key from the start (the dict never changes size); its set stops growing at
    ``_ACCEPTED_MAX`` (a variable dimension has many sizes)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "_accepted", {name: set() for name in self.inputs})

    def validate(self, inputs: Mapping[str, np.ndarray]) -> None:
        """Checks names, dtypes, ranks and fixed dimensions of every input.

        Raises:
            InvalidArgument: naming the first offending input and what the signature expects.
        """
        accepted = self._accepted
        if inputs.keys() == accepted.keys():
            for name, array in inputs.items():
                if (array.dtype, array.shape) not in accepted[name]:
                    break
            else:
                return
        self._check(inputs)
        for name, array in inputs.items():
            seen = accepted[name]
            if len(seen) < _ACCEPTED_MAX:
                seen.add((array.dtype, array.shape))

    def _check(self, inputs: Mapping[str, np.ndarray]) -> None:
        unknown = sorted(set(inputs) - set(self.inputs))
        if unknown:
            raise InvalidArgument(
                f"unknown input {_names(unknown)} for signature '{self.name}'; "
                f"its inputs are {_names(self.inputs)}"
            )
        missing = sorted(set(self.inputs) - set(inputs))
        if missing:
            spec = self.inputs[missing[0]]
            raise InvalidArgument(
                f"missing input {_names(missing)} for signature '{self.name}' "
                f"('{spec.name}' expects {spec.describe()})"
            )
        for name, array in inputs.items():
            _check_tensor(self.name, self.inputs[name], array)

    def select_outputs(self, output_filter: Sequence[str]) -> tuple[str, ...]:
        """The output names to fetch, sorted; all of them for an empty filter.

        Raises:
            InvalidArgument: an unknown or repeated output name.
        """
        if not output_filter:
            return tuple(self.outputs)
        seen: set[str] = set()
        for name in output_filter:
            if name not in self.outputs:
                raise InvalidArgument(
                    f"output_filter names unknown output '{name}' of signature '{self.name}'; "
                    f"its outputs are {_names(self.outputs)}"
                )
            if name in seen:
                raise InvalidArgument(f"output_filter names output '{name}' twice")
            seen.add(name)
        return tuple(sorted(seen))


def _check_tensor(signature: str, spec: TensorSpec, array: np.ndarray) -> None:
    expected = numpy_dtype(spec.dtype)
    if expected.kind == "O":
        ok = array.dtype.kind in "OS"
    else:
        ok = array.dtype.kind == expected.kind and array.dtype.itemsize == expected.itemsize
    if not ok:
        got = dtype_name_of(array)
        raise InvalidArgument(
            f"input '{spec.name}' of signature '{signature}' has dtype {got} but "
            f"{dtype_name(spec.dtype)} is expected"
        )
    if spec.shape is None or _trailing_ones_left_out(array.shape, spec.shape):
        return
    if array.ndim != len(spec.shape):
        raise InvalidArgument(
            f"input '{spec.name}' of signature '{signature}' has shape {list(array.shape)} "
            f"(rank {array.ndim}) but shape {list(spec.shape)} (rank {len(spec.shape)}) is expected"
        )
    for axis, (got_dim, want_dim) in enumerate(zip(array.shape, spec.shape, strict=True)):
        if want_dim >= 0 and got_dim != want_dim:
            raise InvalidArgument(
                f"input '{spec.name}' of signature '{signature}' has shape {list(array.shape)}: "
                f"dimension {axis} is {got_dim} but {want_dim} is expected "
                f"(shape {list(spec.shape)})"
            )


def _trailing_ones_left_out(got: tuple[int, ...], want: tuple[int, ...]) -> bool:
    """True when ``got`` is ``want`` without some trailing dimensions of size 1 (``[3]`` for
    ``[-1, 1]``). TF Serving feeds such a tensor unchanged -- its REST example
    ``{"instances": [1.0, 2.0, 5.0]}`` for half_plus_two's ``[-1, 1]`` input depends on it --
    so it is accepted and fed as it is; a graph that cannot take it answers with its own error."""
    if not 0 < len(got) < len(want) or any(d != 1 for d in want[len(got) :]):
        return False
    return all(w < 0 or g == w for g, w in zip(got, want, strict=False))


def dtype_name_of(array: np.ndarray) -> str:
    """The DataType name for an array's dtype, for messages."""
    try:
        return dtype_name(proto_dtype(array.dtype))
    except TensorError:
        return str(array.dtype)


EXAMPLE_METHODS = ("classify", "regress")
_STRING = 7  # DT_STRING


def check_example_signature(sig: SignatureSpec, method: str) -> tuple[str, tuple[str, ...]]:
    """Checks that ``sig`` can classify or regress serialized ``tf.Example`` protos.

    Accepts signatures exported with the classify/regress method and, as TF2 exports often
    use the predict method for them, any signature of the same shape: one DT_STRING input and
    the method's outputs (``classes`` and/or ``scores``; ``outputs``).

    Returns:
        The input name and the output names to fetch.

    Raises:
        FailedPrecondition: the signature does not fit the method.
    """
    if method not in EXAMPLE_METHODS:
        raise InvalidArgument(f"unknown method '{method}'")
    strings = [i for i in sig.inputs.values() if i.dtype == _STRING]
    if len(sig.inputs) != 1 or not strings:
        raise FailedPrecondition(
            f"signature '{sig.name}' cannot {method} tf.Example inputs: it must take exactly one "
            f"DT_STRING input, it takes {_names(sig.inputs)}"
        )
    if method == "regress":
        outputs: tuple[str, ...] = ("outputs",) if "outputs" in sig.outputs else ()
    else:
        outputs = tuple(o for o in ("classes", "scores") if o in sig.outputs)
    if not outputs:
        wanted = "'outputs'" if method == "regress" else "'classes' and/or 'scores'"
        raise FailedPrecondition(
            f"signature '{sig.name}' cannot {method}: it needs output {wanted}, it has "
            f"{_names(sig.outputs)}"
        )
    return strings[0].name, outputs


def unknown_signature(name: str, available: Iterable[str]) -> FailedPrecondition:
    """The error for a signature the version does not have (TF Serving's code for it)."""
    return FailedPrecondition(
        f"signature '{name}' not found; this model version has {_names(sorted(available))}"
    )


def _names(names: Iterable[str]) -> str:
    return ", ".join(f"'{n}'" for n in names) or "none"


def declared_mismatch(spec: SignatureSpec, declared: DeclaredConfig) -> str:
    """How ``spec`` differs from the tensors the model's config declares ("": it has them all,
    of the declared type, with compatible dims). A tensor the config leaves out is not an error:
    a config may list only what its clients use."""
    for tensor in declared.tensors:
        kind = "output" if tensor.output else "input"
        side = spec.outputs if tensor.output else spec.inputs
        actual = side.get(tensor.name)
        if actual is None:
            return (
                f"{kind} '{tensor.name}' is declared but signature '{spec.name}' has "
                f"{kind}s {sorted(side)}"
            )
        if tensor.dtype and actual.dtype != tensor.dtype:
            return (
                f"{kind} '{tensor.name}' is declared {dtype_name(tensor.dtype)} but signature "
                f"'{spec.name}' has {actual.describe()}"
            )
        dims = (-1, *tensor.dims) if declared.batch_dim else tensor.dims
        if actual.shape is not None and not _compatible(dims, actual.shape):
            batch = " after the batch dimension (max_batch_size > 0)" if declared.batch_dim else ""
            return (
                f"{kind} '{tensor.name}' is declared with dims {list(tensor.dims)}{batch} but "
                f"signature '{spec.name}' has {actual.describe()}"
            )
    return ""


def _compatible(declared: Sequence[int], actual: Sequence[int]) -> bool:
    """Same rank, and each dimension equal or variable (-1) on either side."""
    return len(declared) == len(actual) and all(
        d == a or -1 in (d, a) for d, a in zip(declared, actual, strict=True)
    )
