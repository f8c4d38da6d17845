"""What the clients return, and the conversions from the API's messages (shared by the
blocking ``Client`` and ``swapserve_client.aio.Client``)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import grpc
import numpy as np
import numpy.typing as npt

from swapserve_client import tensors
from swapserve_client._proto.swapserve.v1 import prediction_pb2 as pb
from swapserve_client.errors import SwapserveError


@dataclass(frozen=True)
class PredictResult:
    """A prediction with the version that computed it."""

    model: str
    version: int
    signature: str
    outputs: dict[str, np.ndarray]


@dataclass(frozen=True)
class ReloadResult:
    """What a reload changed."""

    model: str
    previous_version: int
    version: int
    load_seconds: float
    pinned: bool
    canary_version: int = 0
    """A version that passed the gates and answers ``canary_percent`` of the requests first
    (0: none; ``version`` then serves every request)."""
    canary_percent: float = 0.0


@dataclass(frozen=True)
class Rollout:
    """Where the model's newest rollout stands: ``phase`` is "" (none yet), ``GATING``,
    ``CANARY``, ``PROMOTED``, ``ROLLED_BACK``, ``REFUSED`` or ``FORCED``."""

    phase: str = ""
    version: int = 0
    previous_version: int = 0
    canary_percent: float = 0.0
    since_unix: float = 0.0
    message: str = ""
    gate: str = ""


@dataclass(frozen=True)
class VersionStatus:
    """One version of a model and its state (``AVAILABLE``, ``FAILED``, ...)."""

    version: int
    state: str
    error: str
    serving: bool
    load_seconds: float
    updated_unix: float
    labels: tuple[str, ...] = ()
    request_count: int = 0
    """Calls it answered successfully since it loaded."""
    error_count: int = 0
    """Calls it took that failed."""
    last_error_unix: float = 0.0
    """When its last failed call was (0: never)."""
    p99_seconds: float = 0.0
    """99th percentile latency of its recent successful calls (0: none)."""


@dataclass(frozen=True)
class ModelStatus:
    """Every version of a model (newest first), the served version, the pin (0: none) and the
    version labels."""

    model: str
    serving_version: int
    pinned_version: int
    versions: list[VersionStatus]
    labels: dict[str, int] = field(default_factory=dict)
    storage_error: str = ""
    rollout: Rollout = field(default_factory=Rollout)


@dataclass(frozen=True)
class TensorInfo:
    """One input or output of a signature; -1 in ``shape`` is a dimension of any size."""

    name: str
    dtype: str
    shape: tuple[int, ...] | None  # None: any rank

    @property
    def numpy_dtype(self) -> np.dtype[np.generic]:
        """The numpy dtype to send for this input."""
        return tensors.numpy_dtype(pb.DataType.Value(self.dtype)).newbyteorder("=")


@dataclass(frozen=True)
class SignatureInfo:
    """A signature's method name, inputs and outputs."""

    name: str
    method_name: str
    inputs: dict[str, TensorInfo]
    outputs: dict[str, TensorInfo]


@dataclass(frozen=True)
class ModelMetadata:
    """Every signature of one model version."""

    model: str
    version: int
    signatures: dict[str, SignatureInfo]


def predict_request(
    model: str,
    inputs: Mapping[str, npt.ArrayLike],
    *,
    version: int,
    signature: str,
    output_filter: Iterable[str],
    label: str,
) -> pb.PredictRequest:
    """A ``PredictRequest`` with the inputs encoded."""
    request = pb.PredictRequest(
        model_name=model,
        version=version,
        signature_name=signature,
        output_filter=list(output_filter),
        version_label=label,
    )
    tensors.encode_map(inputs, request.inputs)
    return request


def predict_result(response: pb.PredictResponse) -> PredictResult:
    """A ``PredictResponse`` decoded."""
    return PredictResult(
        model=response.model_name,
        version=response.version,
        signature=response.signature_name,
        outputs=tensors.decode_map(response.outputs),
    )


def reload_result(response: pb.ReloadResponse) -> ReloadResult:
    """A ``ReloadResponse`` as a ``ReloadResult``."""
    return ReloadResult(
        model=response.model_name,
        previous_version=response.previous_version,
        version=response.version,
        load_seconds=response.load_seconds,
        pinned=response.pinned,
        canary_version=response.canary_version,
        canary_percent=response.canary_percent,
    )


def model_status(response: pb.GetModelStatusResponse) -> ModelStatus:
    """A ``GetModelStatusResponse`` as a ``ModelStatus``."""
    versions = [
        VersionStatus(
            version=v.version,
            state=pb.ModelVersionStatus.State.Name(v.state),
            error=v.error_message,
            serving=v.serving,
            load_seconds=v.load_seconds,
            updated_unix=v.updated_unix,
            labels=tuple(v.labels),
            request_count=v.request_count,
            error_count=v.error_count,
            last_error_unix=v.last_error_unix,
            p99_seconds=v.p99_seconds,
        )
        for v in response.versions
    ]
    return ModelStatus(
        model=response.model_name,
        serving_version=response.serving_version,
        pinned_version=response.pinned_version,
        versions=versions,
        labels=dict(response.version_labels),
        storage_error=response.storage_error,
        rollout=_rollout(response.rollout),
    )


def _rollout(status: pb.RolloutStatus) -> Rollout:
    phase = pb.RolloutStatus.Phase.Name(status.phase)
    return Rollout(
        phase="" if phase == "NONE" else phase,
        version=status.version,
        previous_version=status.previous_version,
        canary_percent=status.canary_percent,
        since_unix=status.since_unix,
        message=status.message,
        gate=status.gate,
    )


def model_metadata(response: pb.GetModelMetadataResponse) -> ModelMetadata:
    """A ``GetModelMetadataResponse`` as a ``ModelMetadata``."""
    return ModelMetadata(
        model=response.model_name,
        version=response.version,
        signatures={
            s.name: SignatureInfo(
                name=s.name,
                method_name=s.method_name,
                inputs={t.name: _tensor_info(t) for t in s.inputs},
                outputs={t.name: _tensor_info(t) for t in s.outputs},
            )
            for s in response.signatures
        },
    )


def version_serves(status: ModelStatus, version: int, timeout: float, expired: bool) -> bool:
    """One step of ``wait_for_version``: True once ``version`` serves.

    Raises:
        SwapserveError: FAILED_PRECONDITION if it failed to load; DEADLINE_EXCEEDED once
            ``expired`` (saying what serves and the version's state).
    """
    if status.serving_version == version:
        return True
    mine = next((v for v in status.versions if v.version == version), None)
    if mine is not None and mine.state == "FAILED":
        raise SwapserveError(
            grpc.StatusCode.FAILED_PRECONDITION,
            f"version {version} of model '{status.model}' failed to load: {mine.error}",
        )
    if expired:
        state = mine.state if mine is not None else "not seen by the server"
        raise SwapserveError(
            grpc.StatusCode.DEADLINE_EXCEEDED,
            f"version {version} of model '{status.model}' does not serve after {timeout:g}s "
            f"(it is {state}; serving: {status.serving_version or 'nothing'})",
        )
    return False


def cast_inputs(
    inputs: Mapping[str, Any], meta: ModelMetadata, signature: str
) -> dict[str, np.ndarray]:
    """Casts each input to the dtype the signature declares (``[[100.0]]`` for float32, a list
    of strings for DT_STRING); names the signature lacks are left as they are, for the server to
    answer precisely.

    Raises:
        ValueError: a value that cannot be converted (named).
    """
    sig = meta.signatures.get(signature or "serving_default")
    out: dict[str, np.ndarray] = {}
    for name, value in inputs.items():
        info = sig.inputs.get(name) if sig is not None else None
        if info is None:
            out[name] = np.asarray(value)
        elif info.dtype == "DT_STRING":
            out[name] = np.asarray(value, dtype=object)
        else:
            try:
                out[name] = np.asarray(value, dtype=info.numpy_dtype)
            except (TypeError, ValueError) as err:
                raise ValueError(f"input {name}: cannot convert to {info.dtype}: {err}") from None
    return out


def _tensor_info(t: pb.TensorInfo) -> TensorInfo:
    return TensorInfo(
        name=t.name,
        dtype=tensors.dtype_name(t.dtype),
        shape=None if t.unknown_rank else tuple(t.shape),
    )
