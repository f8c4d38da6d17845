"""TensorFlow Serving's messages <-> numpy: TensorProto, tf.Example inputs, classify/regress.

Decoding accepts every encoding TF Serving accepts (``tensor_content`` and the typed ``*_val``
fields, with a single value broadcast as ``tf.make_ndarray`` does), but checks the element count
first so a hostile shape cannot make the server allocate gigabytes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import tensorflow as tf
from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2
from tensorflow_serving.apis import classification_pb2, input_pb2, regression_pb2
from tensorflow_serving.config import model_server_config_pb2

from swapserve.config import export_location
from swapserve.errors import InvalidArgument
from swapserve.settings import ModelSettings, SettingsError, VersionPolicy
from swapserve_client.tensors import TensorError, dtype_name, element_count, numpy_dtype

_MAX_ELEMENTS = 1 << 31
_DT_STRING = 7
# Typed value fields by dtype (as TensorFlow's Tensor::FromProto reads them).
_VALUE_FIELDS = {
    1: "float_val",
    2: "double_val",
    3: "int_val",
    4: "int_val",
    5: "int_val",
    6: "int_val",
    7: "string_val",
    8: "scomplex_val",
    9: "int64_val",
    10: "bool_val",
    17: "int_val",
    18: "dcomplex_val",
    19: "half_val",
    22: "uint32_val",
    23: "uint64_val",
}


def decode_tensor(proto: tensor_pb2.TensorProto, max_bytes: int = 256 << 20) -> np.ndarray:
    """One TensorProto as a numpy array.

    Args:
        proto: the tensor.
        max_bytes: the most memory the decoded array may take. Typed values are broadcast or
            padded to the shape, so a few bytes on the wire could otherwise ask for gigabytes.

    Raises:
        TensorError: unsupported dtype, unknown or negative shape, or values not fitting it.
    """
    dtype = numpy_dtype(proto.dtype)  # raises for unsupported dtypes
    if proto.tensor_shape.unknown_rank:
        raise TensorError("tensor_shape has unknown rank; a concrete shape is required")
    shape = [d.size for d in proto.tensor_shape.dim]
    count = element_count(shape, _MAX_ELEMENTS)
    size = count * (dtype.itemsize if dtype.kind != "O" else 1)
    if size > max_bytes:
        raise TensorError(
            f"shape {shape} of {dtype_name(proto.dtype)} would take {size} bytes, more than the "
            f"{max_bytes} a request may use (--max-message-bytes)"
        )
    if proto.tensor_content:
        if proto.dtype == _DT_STRING:
            raise TensorError("DT_STRING values go in string_val, not tensor_content")
        expected = count * dtype.itemsize
        if len(proto.tensor_content) != expected:
            raise TensorError(
                f"tensor_content has {len(proto.tensor_content)} bytes but shape {shape} of "
                f"{dtype_name(proto.dtype)} needs {expected}"
            )
    else:
        field = _VALUE_FIELDS.get(proto.dtype)
        given = len(getattr(proto, field)) if field else 0
        per_element = 2 if field in ("scomplex_val", "dcomplex_val") else 1
        if given > count * per_element:
            raise TensorError(
                f"{field} has {given} values but shape {shape} holds {count} elements"
            )
        if given == 0 and count > 0:
            raise TensorError(f"no values for shape {shape} of {dtype_name(proto.dtype)}")
    try:
        array = tf.make_ndarray(proto)
    except (ValueError, TypeError) as err:
        raise TensorError(f"cannot decode: {err}") from None
    return np.asarray(array)


def decode_inputs(
    inputs: Mapping[str, tensor_pb2.TensorProto], max_bytes: int = 256 << 20
) -> dict[str, np.ndarray]:
    """Every input, an error naming the input it came from; all together within ``max_bytes``."""
    out = {}
    budget = max_bytes
    for name, proto in inputs.items():
        try:
            out[name] = decode_tensor(proto, budget)
            budget -= out[name].nbytes
        except TensorError as err:
            raise InvalidArgument(f"input '{name}': {err}") from None
    return out


def encode_tensor(array: np.ndarray, out: tensor_pb2.TensorProto) -> None:
    """Fills ``out``: numbers as ``tensor_content``, strings as ``string_val``."""
    array = np.asarray(array)
    out.tensor_shape.CopyFrom(
        tensor_shape_pb2.TensorShapeProto(
            dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=d) for d in array.shape]
        )
    )
    if array.dtype.kind in "OSU":
        out.dtype = _DT_STRING
        out.string_val.extend(
            x if isinstance(x, bytes) else str(x).encode() for x in array.reshape(-1)
        )
        return
    out.dtype = tf.as_dtype(array.dtype).as_datatype_enum
    out.tensor_content = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()


def serialize_examples(inputs: input_pb2.Input) -> np.ndarray:
    """The request's tf.Examples serialized, one per element; context features are merged into
    each example (the example's own features win), as TF Serving does."""
    kind = inputs.WhichOneof("kind")
    if kind == "example_list":
        examples = list(inputs.example_list.examples)
        serialized = [e.SerializeToString() for e in examples]
    elif kind == "example_list_with_context":
        context = inputs.example_list_with_context.context
        serialized = []
        for example in inputs.example_list_with_context.examples:
            merged = type(example)()
            merged.CopyFrom(context)
            merged.MergeFrom(example)
            serialized.append(merged.SerializeToString())
    else:
        raise InvalidArgument("Input is empty: give example_list or example_list_with_context")
    if not serialized:
        raise InvalidArgument("Input has no examples")
    out = np.empty(len(serialized), dtype=object)
    out[:] = serialized
    return out


def _per_example(array: np.ndarray, batch: int, what: str) -> np.ndarray:
    """Outputs as [batch, n]: [batch] and [batch, n] are accepted."""
    if array.ndim == 1:
        array = array.reshape(-1, 1)
    if array.ndim != 2 or array.shape[0] != batch:
        raise InvalidArgument(
            f"{what} has shape {list(array.shape)}; expected [{batch}] or [{batch}, N] "
            f"for {batch} examples"
        )
    return array


def classification_result(
    outputs: Mapping[str, np.ndarray], batch: int
) -> classification_pb2.ClassificationResult:
    """``classes`` ([batch, n] strings) and/or ``scores`` ([batch, n] floats) as a result."""
    classes = outputs.get("classes")
    scores = outputs.get("scores")
    c = None if classes is None else _per_example(classes, batch, "output 'classes'")
    s = None if scores is None else _per_example(scores, batch, "output 'scores'")
    if c is not None and s is not None and c.shape != s.shape:
        raise InvalidArgument(
            f"outputs 'classes' {list(c.shape)} and 'scores' {list(s.shape)} differ in shape"
        )
    width = (c if c is not None else s).shape[1]  # type: ignore[union-attr]
    result = classification_pb2.ClassificationResult()
    for row in range(batch):
        entry = result.classifications.add()
        for col in range(width):
            klass = entry.classes.add()
            if c is not None:
                value = c[row, col]
                klass.label = (
                    value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
                )
            if s is not None:
                klass.score = float(s[row, col])
    return result


def regression_result(
    outputs: Mapping[str, np.ndarray], batch: int
) -> regression_pb2.RegressionResult:
    """``outputs`` ([batch] or [batch, 1] floats) as a result."""
    values = _per_example(outputs["outputs"], batch, "output 'outputs'")
    if values.shape[1] != 1:
        raise InvalidArgument(
            f"output 'outputs' has shape {list(values.shape)}; regression needs [{batch}] or "
            f"[{batch}, 1]"
        )
    result = regression_pb2.RegressionResult()
    for value in values[:, 0]:
        result.regressions.add(value=float(value))
    return result


_ALL_VERSIONS = 2**31  # model_version_policy "all": every version on disk


def model_settings(
    config: model_server_config_pb2.ModelServerConfig,
    current: Callable[[str], ModelSettings | None],
) -> tuple[ModelSettings, ...]:
    """A ``model_config_list`` as model settings: name, base_path, model_version_policy and
    version_labels come from the config; options TF Serving's config does not carry (polling,
    batching, warm-up) stay as the model has them (defaults for a new model).

    Raises:
        InvalidArgument: another kind of config, or an invalid entry (named).
    """
    if config.WhichOneof("config") != "model_config_list":
        raise InvalidArgument("only model_config_list configs are supported")
    out = []
    for i, entry in enumerate(config.model_config_list.config):
        where = f"model_config_list.config[{i}]"
        if not entry.name or not entry.base_path:
            raise InvalidArgument(f"{where}: name and base_path are required")
        if entry.model_platform not in ("", "tensorflow"):
            raise InvalidArgument(
                f"{where}: model_platform {entry.model_platform!r} is not served here "
                "(use 'tensorflow')"
            )
        base = current(entry.name) or ModelSettings(entry.name, Path(entry.base_path))
        policy = entry.model_version_policy
        choice = policy.WhichOneof("policy_choice")
        if choice == "specific":
            versions = VersionPolicy(specific=tuple(int(v) for v in policy.specific.versions))
        elif choice == "all":
            versions = VersionPolicy(latest=_ALL_VERSIONS)
        else:
            latest = policy.latest.num_versions if choice == "latest" else 1
            versions = VersionPolicy(latest=latest or 1)
        export_root, remote = export_location(entry.name, entry.base_path)
        settings = dataclasses.replace(
            base,
            export_root=export_root,
            remote=remote,
            versions=versions,
            labels=dict(entry.version_labels),
        )
        try:
            settings.validate()
        except SettingsError as err:
            raise InvalidArgument(f"{where}: {err}") from None
        out.append(settings)
    names = [m.name for m in out]
    if len(set(names)) != len(names):
        raise InvalidArgument(f"a model is listed twice in model_config_list: {names}")
    return tuple(out)
