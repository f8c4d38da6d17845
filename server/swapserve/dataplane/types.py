"""Every value a transport gets from the data plane and its admin calls: plain values, no
protocol types. Transports import these names from here, whichever core module defines them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from swapserve.config.model_settings import BatchingSettings, DeclaredConfig, VersionPolicy
from swapserve.model.outcomes import (
    ConfigChange,
    Prediction,
    ReloadOutcome,
    RolloutStatus,
    WarmupRequest,
)
from swapserve.model.records import ModelStatus, State, VersionStatus
from swapserve.model.signature import DEFAULT_SIGNATURE, SignatureSpec, TensorSpec
from swapserve.observability.stats import Duration, VersionStats

__all__ = [
    "DEFAULT_SIGNATURE",
    "ConfigChange",
    "Duration",
    "IndexEntry",
    "Metadata",
    "ModelConfigInfo",
    "ModelStatus",
    "Prediction",
    "ReloadOutcome",
    "RolloutStatus",
    "SignatureSpec",
    "State",
    "TensorSpec",
    "VersionStatistics",
    "VersionStats",
    "VersionStatus",
    "WarmupRequest",
]


@dataclass(frozen=True)
class Metadata:
    """A loaded version's signatures (and the SavedModel's SignatureDef protos)."""

    version: int
    signatures: Mapping[str, SignatureSpec]
    signature_defs: Mapping[str, Any]


@dataclass(frozen=True)
class IndexEntry:
    """One model as a repository index lists it: the serving version, else the newest known."""

    name: str
    version: VersionStatus | None
    problem: str = ""
    """Why the model is not served as configured ("": it is): "unloaded", or its invalid
    config."""


@dataclass(frozen=True)
class VersionStatistics:
    """One loaded version's call statistics (V2 ``ModelStatistics``)."""

    model: str
    version: int
    stats: VersionStats


@dataclass(frozen=True)
class ModelConfigInfo:
    """What a model's configuration says, for V2 ``ModelConfig``: the signature its inputs and
    outputs come from, its batching and version policy."""

    name: str
    version: int
    signature: SignatureSpec
    batching: BatchingSettings
    versions: VersionPolicy
    declared: DeclaredConfig = field(default_factory=DeclaredConfig)
    """What the model's own config declares, reported as written."""
