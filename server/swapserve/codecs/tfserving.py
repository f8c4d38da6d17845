"""TensorFlow Serving's messages <-> numpy and the data plane's types: TensorProto, tf.Example
inputs, classify/regress results, model specs, status and metadata.

Decoding accepts every encoding TF Serving accepts (``tensor_content`` and the typed ``*_val``
fields, a short list padded with its last value as ``tf.make_ndarray`` does), but checks the
element count first so a hostile shape cannot make the server allocate gigabytes. No TensorFlow:
numbers are read straight into numpy (``tensor_content`` without a copy).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from swapserve.apis import tfserving as api
from swapserve.dataplane.types import DEFAULT_SIGNATURE, State, VersionStatus, WarmupRequest
from swapserve.errors import InvalidArgument
from swapserve_client.dtypes import (
    TensorError,
    dtype_name,
    element_count,
    numpy_dtype,
    proto_dtype,
)

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
_DT_HALF = 19
# Complex values come as (real, imaginary) pairs of these.
_COMPLEX_PARTS: dict[int, np.dtype[np.generic]] = {8: np.dtype("<f4"), 18: np.dtype("<f8")}


def _enum(number: int) -> Any:
    """An enum field's value by number (the stubs type enum fields by their wrapper class, which
    our dtype and state tables do not use)."""
    return number


def decode_tensor(proto: api.TensorProto, max_bytes: int = 256 << 20) -> np.ndarray:
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
    if proto.tensor_content:
        return np.frombuffer(proto.tensor_content, dtype=dtype).reshape(shape)
    return _typed_values(proto, dtype, count).reshape(shape)


def _typed_values(proto: api.TensorProto, dtype: np.dtype[np.generic], count: int) -> np.ndarray:
    """The ``*_val`` field as ``count`` values of ``dtype``: a shorter list is padded with its
    last value (TensorFlow's ``MakeNdarray``); half floats come as their 16 bits, complex
    numbers as (real, imaginary) pairs."""
    field = _VALUE_FIELDS[proto.dtype]
    raw = getattr(proto, field)
    try:
        if proto.dtype == _DT_STRING:
            values = np.empty(len(raw), dtype=object)
            values[:] = list(raw)
        elif proto.dtype == _DT_HALF:
            values = np.array(raw, dtype=np.uint16).view(np.float16)
        elif proto.dtype in _COMPLEX_PARTS:
            values = np.array(raw, dtype=_COMPLEX_PARTS[proto.dtype]).view(dtype)
        else:
            values = np.array(list(raw), dtype=dtype)  # Python ints: out of range raises
    except (OverflowError, ValueError, TypeError) as err:
        raise TensorError(f"{field} does not fit {dtype_name(proto.dtype)}: {err}") from None
    if values.size < count:
        values = np.concatenate([values, np.repeat(values[-1:], count - values.size)])
    return values


def decode_inputs(
    inputs: Mapping[str, api.TensorProto], max_bytes: int = 256 << 20
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


def encode_tensor(array: np.ndarray, out: api.TensorProto) -> None:
    """Fills ``out``: numbers as ``tensor_content``, strings as ``string_val``."""
    array = np.asarray(array)
    out.tensor_shape.CopyFrom(
        api.TensorShapeProto(dim=[api.TensorShapeProto.Dim(size=d) for d in array.shape])
    )
    if array.dtype.kind in "OSU":
        out.dtype = _enum(_DT_STRING)
        out.string_val.extend(
            x if isinstance(x, bytes) else str(x).encode() for x in array.reshape(-1)
        )
        return
    out.dtype = _enum(proto_dtype(array.dtype))
    out.tensor_content = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()


def serialize_examples(inputs: api.Input) -> np.ndarray:
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
) -> api.ClassificationResult:
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
    result = api.ClassificationResult()
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


def regression_result(outputs: Mapping[str, np.ndarray], batch: int) -> api.RegressionResult:
    """``outputs`` ([batch] or [batch, 1] floats) as a result."""
    values = _per_example(outputs["outputs"], batch, "output 'outputs'")
    if values.shape[1] != 1:
        raise InvalidArgument(
            f"output 'outputs' has shape {list(values.shape)}; regression needs [{batch}] or "
            f"[{batch}, 1]"
        )
    result = api.RegressionResult()
    for value in values[:, 0]:
        result.regressions.add(value=float(value))
    return result


# ---- model specs, status and metadata -----------------------------------------------------------

_STATES = {  # our states -> TF Serving's ModelVersionStatus.State (FAILED is END + error)
    State.START: 10,
    State.LOADING: 20,
    State.AVAILABLE: 30,
    State.UNLOADING: 40,
    State.END: 50,
    State.FAILED: 50,
}
_UNKNOWN = 2  # tensorflow.error.Code.UNKNOWN


def version_choice(spec: api.ModelSpec) -> tuple[int, str]:
    """The requested (version, label); (0, "") for "the served one"."""
    choice = spec.WhichOneof("version_choice")
    if choice == "version_label":
        return 0, spec.version_label
    return (spec.version.value if choice == "version" else 0), ""


def model_spec(name: str, version: int, signature: str) -> api.ModelSpec:
    """The spec an answer carries: the model, the version that answered, the signature."""
    return api.ModelSpec(name=name, version=api.Int64Value(value=version), signature_name=signature)


def status_response(
    versions: Iterable[VersionStatus],
) -> api.GetModelStatusResponse:
    """GetModelStatus's answer in TF Serving's states (a failed version is END with an error)."""
    return api.GetModelStatusResponse(
        model_version_status=[
            api.ModelVersionStatus(
                version=v.version,
                state=_enum(_STATES[v.state]),
                status=api.StatusProto(
                    error_code=_enum(_UNKNOWN if v.state is State.FAILED else 0),
                    error_message=v.error,
                ),
            )
            for v in versions
        ]
    )


def metadata_response(
    name: str, version: int, signature_defs: Mapping[str, Any]
) -> api.GetModelMetadataResponse:
    """GetModelMetadata's answer: the SignatureDefs packed as ``metadata["signature_def"]``."""
    response = api.GetModelMetadataResponse(model_spec=model_spec(name, version, ""))
    signature_map = api.SignatureDefMap()
    for key, sig in signature_defs.items():
        # A SignatureDef of the loaded model (protobuf's default pool) into ours: by its bytes.
        signature_map.signature_def[key].MergeFromString(sig.SerializeToString())
    response.metadata["signature_def"].Pack(signature_map)
    return response


CLASSIFY_METHOD = "tensorflow/serving/classify"
REGRESS_METHOD = "tensorflow/serving/regress"
_EXAMPLE_METHODS = {CLASSIFY_METHOD: "classify", REGRESS_METHOD: "regress"}


def multi_inference_tasks(request: Any) -> tuple[str, list[tuple[str, str]]]:
    """The model and the (signature name, ``classify``/``regress``) of each task of a
    ``MultiInferenceRequest``, checked as TF Serving checks them.

    Raises:
        InvalidArgument: no tasks, several models, a repeated signature, an unknown method.
    """
    if not request.tasks:
        raise InvalidArgument("MultiInferenceRequest has no tasks")
    names = {t.model_spec.name for t in request.tasks}
    if len(names) != 1:
        raise InvalidArgument(f"all tasks must use the same model, got {sorted(names)}")
    signatures = [t.model_spec.signature_name or DEFAULT_SIGNATURE for t in request.tasks]
    if len(set(signatures)) != len(signatures):
        raise InvalidArgument("tasks must use distinct signatures")
    tasks = []
    for task in request.tasks:
        method = _EXAMPLE_METHODS.get(task.method_name)
        if method is None:
            raise InvalidArgument(
                f"unsupported method_name {task.method_name!r}; use {CLASSIFY_METHOD} or "
                f"{REGRESS_METHOD}"
            )
        tasks.append((task.model_spec.signature_name, method))
    return names.pop(), tasks


def check_metadata_fields(fields: Sequence[str]) -> None:
    """Raises InvalidArgument unless ``fields`` asks for ``signature_def`` only (all TF Serving
    serves)."""
    if not fields:
        raise InvalidArgument("GetModelMetadataRequest must specify at least one metadata_field")
    for field in fields:
        if field != "signature_def":
            raise InvalidArgument(f"Metadata field {field} is not supported")


def warmup_request(raw: bytes) -> WarmupRequest | str:
    """One record of an export's warm-up file (a serialized ``PredictionLog``): its predict
    request, or the kind of log it is when it holds none (skipped, as TF Serving skips it).

    Raises:
        InvalidArgument: an input that is not a valid tensor (named).
    """
    record = api.PredictionLog.FromString(raw)
    kind = record.WhichOneof("log_type")
    if kind != "predict_log":
        return str(kind)
    request = record.predict_log.request
    return WarmupRequest(
        request.model_spec.signature_name,
        decode_inputs(request.inputs),
        tuple(request.output_filter),
    )
