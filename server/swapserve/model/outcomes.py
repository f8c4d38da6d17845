"""The plain values the model core answers with or takes in: a prediction, a reload's outcome,
a config change, a warm-up request. Kept apart from the classes that produce them so codecs and
transports can name them without importing the core."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Prediction:
    """Outputs with the version and signature that produced them."""

    version: int
    signature: str
    outputs: dict[str, np.ndarray]


@dataclass(frozen=True)
class ReloadOutcome:
    """What a reload changed."""

    previous_version: int
    version: int
    load_seconds: float
    pinned: bool
    canary_version: int = 0
    """A version that passed the gates and answers ``canary_percent`` of the requests before
    it takes them all (0: none)."""
    canary_percent: float = 0.0


@dataclass(frozen=True)
class ConfigChange:
    """What applying a model list changed, by model name."""

    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    updated: tuple[str, ...] = ()
    """Changed in place: version policy, labels, polling or warm-up."""
    replaced: tuple[str, ...] = ()
    """Export root or batching changed: a new manager loaded, then took over."""

    def __str__(self) -> str:
        parts = [
            f"{what} {', '.join(names)}"
            for what, names in (
                ("added", self.added),
                ("removed", self.removed),
                ("updated", self.updated),
                ("replaced", self.replaced),
            )
            if names
        ]
        return "; ".join(parts) or "no change"


@dataclass(frozen=True)
class WarmupRequest:
    """One request of an export's warm-up file, decoded (TF Serving's ``PredictionLog``)."""

    signature: str
    inputs: dict[str, np.ndarray]
    output_filter: tuple[str, ...] = ()


PHASES = ("", "gating", "canary", "promoted", "rolled back", "refused", "forced")
"""A model's rollout phases ("": no version has been through a rollout yet)."""


@dataclass(frozen=True)
class RolloutStatus:
    """Where the model's newest rollout stands."""

    phase: str = ""
    version: int = 0
    """The version the phase is about."""
    previous_version: int = 0
    """The version it is compared with (and that serves the rest during a canary)."""
    canary_percent: float = 0.0
    since_unix: float = 0.0
    message: str = ""
    """Why: the gate's refusal, the rollback's breach, the promotion's figures."""
    gate: str = ""
    """The gate that refused (phase ``refused``)."""
