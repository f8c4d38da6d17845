from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Iterable as _Iterable, Mapping as _Mapping, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor
DT_BFLOAT16: DataType
DT_BOOL: DataType
DT_COMPLEX128: DataType
DT_COMPLEX64: DataType
DT_DOUBLE: DataType
DT_FLOAT: DataType
DT_HALF: DataType
DT_INT16: DataType
DT_INT32: DataType
DT_INT64: DataType
DT_INT8: DataType
DT_INVALID: DataType
DT_STRING: DataType
DT_UINT16: DataType
DT_UINT32: DataType
DT_UINT64: DataType
DT_UINT8: DataType

class GetModelMetadataRequest(_message.Message):
    __slots__ = ["model_name", "version", "version_label"]
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    VERSION_LABEL_FIELD_NUMBER: _ClassVar[int]
    model_name: str
    version: int
    version_label: str
    def __init__(self, model_name: _Optional[str] = ..., version: _Optional[int] = ..., version_label: _Optional[str] = ...) -> None: ...

class GetModelMetadataResponse(_message.Message):
    __slots__ = ["model_name", "signatures", "version"]
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    SIGNATURES_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    model_name: str
    signatures: _containers.RepeatedCompositeFieldContainer[SignatureMetadata]
    version: int
    def __init__(self, model_name: _Optional[str] = ..., version: _Optional[int] = ..., signatures: _Optional[_Iterable[_Union[SignatureMetadata, _Mapping]]] = ...) -> None: ...

class GetModelStatusRequest(_message.Message):
    __slots__ = ["model_name"]
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    model_name: str
    def __init__(self, model_name: _Optional[str] = ...) -> None: ...

class GetModelStatusResponse(_message.Message):
    __slots__ = ["model_name", "pinned_version", "rollout", "serving_version", "storage_error", "version_labels", "versions"]
    class VersionLabelsEntry(_message.Message):
        __slots__ = ["key", "value"]
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    PINNED_VERSION_FIELD_NUMBER: _ClassVar[int]
    ROLLOUT_FIELD_NUMBER: _ClassVar[int]
    SERVING_VERSION_FIELD_NUMBER: _ClassVar[int]
    STORAGE_ERROR_FIELD_NUMBER: _ClassVar[int]
    VERSIONS_FIELD_NUMBER: _ClassVar[int]
    VERSION_LABELS_FIELD_NUMBER: _ClassVar[int]
    model_name: str
    pinned_version: int
    rollout: RolloutStatus
    serving_version: int
    storage_error: str
    version_labels: _containers.ScalarMap[str, int]
    versions: _containers.RepeatedCompositeFieldContainer[ModelVersionStatus]
    def __init__(self, model_name: _Optional[str] = ..., versions: _Optional[_Iterable[_Union[ModelVersionStatus, _Mapping]]] = ..., serving_version: _Optional[int] = ..., pinned_version: _Optional[int] = ..., version_labels: _Optional[_Mapping[str, int]] = ..., storage_error: _Optional[str] = ..., rollout: _Optional[_Union[RolloutStatus, _Mapping]] = ...) -> None: ...

class ModelVersionStatus(_message.Message):
    __slots__ = ["error_count", "error_message", "labels", "last_error_unix", "load_seconds", "p99_seconds", "request_count", "serving", "state", "updated_unix", "version"]
    class State(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = []
    AVAILABLE: ModelVersionStatus.State
    END: ModelVersionStatus.State
    ERROR_COUNT_FIELD_NUMBER: _ClassVar[int]
    ERROR_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    FAILED: ModelVersionStatus.State
    LABELS_FIELD_NUMBER: _ClassVar[int]
    LAST_ERROR_UNIX_FIELD_NUMBER: _ClassVar[int]
    LOADING: ModelVersionStatus.State
    LOAD_SECONDS_FIELD_NUMBER: _ClassVar[int]
    P99_SECONDS_FIELD_NUMBER: _ClassVar[int]
    REQUEST_COUNT_FIELD_NUMBER: _ClassVar[int]
    SERVING_FIELD_NUMBER: _ClassVar[int]
    START: ModelVersionStatus.State
    STATE_FIELD_NUMBER: _ClassVar[int]
    UNKNOWN: ModelVersionStatus.State
    UNLOADING: ModelVersionStatus.State
    UPDATED_UNIX_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    error_count: int
    error_message: str
    labels: _containers.RepeatedScalarFieldContainer[str]
    last_error_unix: float
    load_seconds: float
    p99_seconds: float
    request_count: int
    serving: bool
    state: ModelVersionStatus.State
    updated_unix: float
    version: int
    def __init__(self, version: _Optional[int] = ..., state: _Optional[_Union[ModelVersionStatus.State, str]] = ..., error_message: _Optional[str] = ..., serving: bool = ..., load_seconds: _Optional[float] = ..., updated_unix: _Optional[float] = ..., labels: _Optional[_Iterable[str]] = ..., request_count: _Optional[int] = ..., error_count: _Optional[int] = ..., last_error_unix: _Optional[float] = ..., p99_seconds: _Optional[float] = ...) -> None: ...

class PredictRequest(_message.Message):
    __slots__ = ["inputs", "model_name", "output_filter", "signature_name", "version", "version_label"]
    class InputsEntry(_message.Message):
        __slots__ = ["key", "value"]
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: Tensor
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[Tensor, _Mapping]] = ...) -> None: ...
    INPUTS_FIELD_NUMBER: _ClassVar[int]
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FILTER_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    VERSION_LABEL_FIELD_NUMBER: _ClassVar[int]
    inputs: _containers.MessageMap[str, Tensor]
    model_name: str
    output_filter: _containers.RepeatedScalarFieldContainer[str]
    signature_name: str
    version: int
    version_label: str
    def __init__(self, model_name: _Optional[str] = ..., version: _Optional[int] = ..., signature_name: _Optional[str] = ..., inputs: _Optional[_Mapping[str, Tensor]] = ..., output_filter: _Optional[_Iterable[str]] = ..., version_label: _Optional[str] = ...) -> None: ...

class PredictResponse(_message.Message):
    __slots__ = ["model_name", "outputs", "signature_name", "version"]
    class OutputsEntry(_message.Message):
        __slots__ = ["key", "value"]
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: Tensor
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[Tensor, _Mapping]] = ...) -> None: ...
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    OUTPUTS_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    model_name: str
    outputs: _containers.MessageMap[str, Tensor]
    signature_name: str
    version: int
    def __init__(self, model_name: _Optional[str] = ..., version: _Optional[int] = ..., signature_name: _Optional[str] = ..., outputs: _Optional[_Mapping[str, Tensor]] = ...) -> None: ...

class ReloadRequest(_message.Message):
    __slots__ = ["force", "model_name", "version"]
    FORCE_FIELD_NUMBER: _ClassVar[int]
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    force: bool
    model_name: str
    version: int
    def __init__(self, model_name: _Optional[str] = ..., version: _Optional[int] = ..., force: bool = ...) -> None: ...

class ReloadResponse(_message.Message):
    __slots__ = ["canary_percent", "canary_version", "load_seconds", "model_name", "pinned", "previous_version", "version"]
    CANARY_PERCENT_FIELD_NUMBER: _ClassVar[int]
    CANARY_VERSION_FIELD_NUMBER: _ClassVar[int]
    LOAD_SECONDS_FIELD_NUMBER: _ClassVar[int]
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    PINNED_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_VERSION_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    canary_percent: float
    canary_version: int
    load_seconds: float
    model_name: str
    pinned: bool
    previous_version: int
    version: int
    def __init__(self, model_name: _Optional[str] = ..., previous_version: _Optional[int] = ..., version: _Optional[int] = ..., load_seconds: _Optional[float] = ..., pinned: bool = ..., canary_version: _Optional[int] = ..., canary_percent: _Optional[float] = ...) -> None: ...

class RolloutStatus(_message.Message):
    __slots__ = ["canary_percent", "gate", "message", "phase", "previous_version", "since_unix", "version"]
    class Phase(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = []
    CANARY: RolloutStatus.Phase
    CANARY_PERCENT_FIELD_NUMBER: _ClassVar[int]
    FORCED: RolloutStatus.Phase
    GATE_FIELD_NUMBER: _ClassVar[int]
    GATING: RolloutStatus.Phase
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    NONE: RolloutStatus.Phase
    PHASE_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_VERSION_FIELD_NUMBER: _ClassVar[int]
    PROMOTED: RolloutStatus.Phase
    REFUSED: RolloutStatus.Phase
    ROLLED_BACK: RolloutStatus.Phase
    SINCE_UNIX_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    canary_percent: float
    gate: str
    message: str
    phase: RolloutStatus.Phase
    previous_version: int
    since_unix: float
    version: int
    def __init__(self, phase: _Optional[_Union[RolloutStatus.Phase, str]] = ..., version: _Optional[int] = ..., previous_version: _Optional[int] = ..., canary_percent: _Optional[float] = ..., since_unix: _Optional[float] = ..., message: _Optional[str] = ..., gate: _Optional[str] = ...) -> None: ...

class SignatureMetadata(_message.Message):
    __slots__ = ["inputs", "method_name", "name", "outputs"]
    INPUTS_FIELD_NUMBER: _ClassVar[int]
    METHOD_NAME_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    OUTPUTS_FIELD_NUMBER: _ClassVar[int]
    inputs: _containers.RepeatedCompositeFieldContainer[TensorInfo]
    method_name: str
    name: str
    outputs: _containers.RepeatedCompositeFieldContainer[TensorInfo]
    def __init__(self, name: _Optional[str] = ..., method_name: _Optional[str] = ..., inputs: _Optional[_Iterable[_Union[TensorInfo, _Mapping]]] = ..., outputs: _Optional[_Iterable[_Union[TensorInfo, _Mapping]]] = ...) -> None: ...

class Tensor(_message.Message):
    __slots__ = ["dtype", "shape", "string_val", "tensor_content"]
    DTYPE_FIELD_NUMBER: _ClassVar[int]
    SHAPE_FIELD_NUMBER: _ClassVar[int]
    STRING_VAL_FIELD_NUMBER: _ClassVar[int]
    TENSOR_CONTENT_FIELD_NUMBER: _ClassVar[int]
    dtype: DataType
    shape: _containers.RepeatedScalarFieldContainer[int]
    string_val: _containers.RepeatedScalarFieldContainer[bytes]
    tensor_content: bytes
    def __init__(self, dtype: _Optional[_Union[DataType, str]] = ..., shape: _Optional[_Iterable[int]] = ..., tensor_content: _Optional[bytes] = ..., string_val: _Optional[_Iterable[bytes]] = ...) -> None: ...

class TensorInfo(_message.Message):
    __slots__ = ["dtype", "name", "shape", "unknown_rank"]
    DTYPE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    SHAPE_FIELD_NUMBER: _ClassVar[int]
    UNKNOWN_RANK_FIELD_NUMBER: _ClassVar[int]
    dtype: DataType
    name: str
    shape: _containers.RepeatedScalarFieldContainer[int]
    unknown_rank: bool
    def __init__(self, name: _Optional[str] = ..., dtype: _Optional[_Union[DataType, str]] = ..., shape: _Optional[_Iterable[int]] = ..., unknown_rank: bool = ...) -> None: ...

class DataType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = []
