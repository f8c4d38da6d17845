"""How a new version earns its place: the gates it must pass before it serves, and the canary
share it then answers before it takes all traffic. Declared once with their flags; the config
file sets them per model under ``rollout``, TF Serving's and Triton's configs get the flags'
values. See docs/lifecycle.md#safe-rollout.
"""

from __future__ import annotations

from dataclasses import dataclass

from swapserve.config.declare import setting

ROUTING_KEY = "swapserve-routing-key"
"""The gRPC metadata key and HTTP header by which a caller keeps its requests on one side of a
canary split (the same key always lands on the same version)."""


class RolloutSettingsError(ValueError):
    """A rollout setting out of range (re-raised as ``SettingsError`` naming the model)."""


@dataclass(frozen=True)
class RolloutSettings:
    """Gates and canary of one model."""

    gates: bool = setting(
        True, name="--no-gates", negate=True,
        help="serve a new version as soon as it loads, without the signature, finite, latency "
        "and divergence gates",
        doc="see [Safe rollout](lifecycle.md#safe-rollout)",
    )  # fmt: skip
    gate_latency_ratio: float = setting(
        3.0, help="refuse a new version whose p99 on the gate sample is above this multiple of "
        "the serving version's (run alternately in this process); 0: no latency gate",
    )  # fmt: skip
    gate_max_divergence: float = setting(
        0.0, shown_default="off",
        help="refuse a new version whose float outputs differ from the serving version's by "
        "more than this on the gate sample (the difference over max(1, the serving value)), or "
        "whose top-1 classes agree "
        "on fewer than 1 - this of the rows; 0: no divergence gate",
    )  # fmt: skip
    gate_sample_requests: int = setting(
        1000, help="recent live requests kept in memory per model for the gates (1 in 8 once "
        "full)",
    )  # fmt: skip
    gate_sample_bytes: int = setting(
        16 << 20, help="bytes of input the gate sample of one model may hold",
    )  # fmt: skip
    canary_percent: float = setting(
        0.0, shown_default="off",
        help="a version that passed the gates first answers this percent of the requests that "
        "name no version or label, the previous version the rest; 0: no canary",
    )  # fmt: skip
    canary_seconds: float = setting(
        60.0, help="how long a canary is watched on live traffic before it is promoted",
    )  # fmt: skip
    canary_min_requests: int = setting(
        100, help="requests the canary must have answered before it is promoted (the window "
        "waits for them) and before its error rate and p99 are compared",
    )  # fmt: skip
    canary_max_error_rate: float = setting(
        0.01, help="roll the canary back when its server-side error rate exceeds the previous "
        "version's by more than this (0.01: one point)",
    )  # fmt: skip
    canary_latency_ratio: float = setting(
        3.0, help="roll the canary back when its p99 exceeds this multiple of the previous "
        "version's; 0: latency not compared",
    )  # fmt: skip
    canary_max_nonfinite: int = setting(
        0, shown_default="0",
        help="non-finite (NaN, Inf) answers the canary may give beyond the previous version's "
        "rate before it is rolled back",
    )  # fmt: skip

    def validate(self) -> None:
        """Raises RolloutSettingsError naming the first bad field."""
        checks = (
            ("gate_latency_ratio", self.gate_latency_ratio == 0 or self.gate_latency_ratio >= 1,
             "0 (off) or >= 1"),
            ("gate_max_divergence", self.gate_max_divergence >= 0, ">= 0"),
            ("gate_sample_requests", self.gate_sample_requests >= 1, ">= 1"),
            ("gate_sample_bytes", self.gate_sample_bytes >= 1024, ">= 1024"),
            ("canary_percent", 0 <= self.canary_percent < 100, "from 0 to less than 100"),
            ("canary_seconds", self.canary_seconds > 0, "> 0"),
            ("canary_min_requests", self.canary_min_requests >= 1, ">= 1"),
            ("canary_max_error_rate", 0 <= self.canary_max_error_rate <= 1, "from 0 to 1"),
            ("canary_latency_ratio",
             self.canary_latency_ratio == 0 or self.canary_latency_ratio >= 1, "0 (off) or >= 1"),
            ("canary_max_nonfinite", self.canary_max_nonfinite >= 0, ">= 0"),
        )  # fmt: skip
        for name, ok, rule in checks:
            if not ok:
                raise RolloutSettingsError(
                    f"rollout.{name} must be {rule}, got {getattr(self, name)}"
                )

    @property
    def canary(self) -> bool:
        """A gated version answers a share first."""
        return self.canary_percent > 0
