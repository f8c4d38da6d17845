"""swapserve.v1 messages <-> the data plane's types (tensors: ``swapserve_client.tensors``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from swapserve.dataplane.types import (
    ModelStatus,
    RolloutStatus,
    SignatureSpec,
    TensorSpec,
    VersionStats,
)
from swapserve_client._proto.swapserve.v1 import prediction_pb2 as pb


def status_response(model: str, status: ModelStatus) -> pb.GetModelStatusResponse:
    """GetModelStatus's answer: every known version, newest first."""
    return pb.GetModelStatusResponse(
        model_name=model,
        serving_version=status.serving_version,
        pinned_version=status.pinned_version,
        versions=[
            pb.ModelVersionStatus(
                version=v.version,
                state=int(v.state),  # type: ignore[arg-type]
                error_message=v.error,
                serving=v.serving,
                load_seconds=v.load_seconds,
                updated_unix=v.updated_unix,
                labels=v.labels,
                **_stats(v.stats),
            )
            for v in status.versions
        ],
        version_labels=status.labels,
        storage_error=status.storage_error,
        rollout=_rollout(status.rollout),
    )


_PHASES = {
    "": pb.RolloutStatus.NONE,
    "gating": pb.RolloutStatus.GATING,
    "canary": pb.RolloutStatus.CANARY,
    "promoted": pb.RolloutStatus.PROMOTED,
    "rolled back": pb.RolloutStatus.ROLLED_BACK,
    "refused": pb.RolloutStatus.REFUSED,
    "forced": pb.RolloutStatus.FORCED,
}


def _rollout(status: RolloutStatus) -> pb.RolloutStatus:
    return pb.RolloutStatus(
        phase=_PHASES[status.phase],
        version=status.version,
        previous_version=status.previous_version,
        canary_percent=status.canary_percent,
        since_unix=status.since_unix,
        message=status.message,
        gate=status.gate,
    )


def _stats(stats: VersionStats | None) -> dict[str, Any]:
    if stats is None:
        return {}
    return {
        "request_count": stats.success.count,
        "error_count": stats.fail.count,
        "last_error_unix": stats.last_error_ms / 1000,
        "p99_seconds": stats.p99_seconds,
    }


def metadata_response(
    model: str, version: int, signatures: Mapping[str, SignatureSpec]
) -> pb.GetModelMetadataResponse:
    """GetModelMetadata's answer: every signature with its tensors."""
    return pb.GetModelMetadataResponse(
        model_name=model,
        version=version,
        signatures=[
            pb.SignatureMetadata(
                name=sig.name,
                method_name=sig.method_name,
                inputs=[_tensor_info(t) for t in sig.inputs.values()],
                outputs=[_tensor_info(t) for t in sig.outputs.values()],
            )
            for sig in signatures.values()
        ],
    )


def _tensor_info(spec: TensorSpec) -> pb.TensorInfo:
    return pb.TensorInfo(
        name=spec.name,
        dtype=spec.dtype,  # type: ignore[arg-type]
        shape=[] if spec.shape is None else list(spec.shape),
        unknown_rank=spec.shape is None,
    )
