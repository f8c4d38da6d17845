"""The gates' decisions as pure functions: no TensorFlow, no threads, no clock.

A candidate version is compared with the version serving now. Each function returns None when
the candidate passes, else the message that follows "rejected by the <name> gate: ". The runner
(``gating.py``) runs the versions and hands these functions what it saw.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from swapserve.model.signature import SignatureSpec, TensorSpec
from swapserve_client.dtypes import dtype_name

GATES = ("signature", "latency", "finite", "divergence")
"""Every gate, in the order they run; a refusal stops the rest."""

LATENCY_FLOOR_SECONDS = 0.001
"""A p99 difference below this never refuses: sub-millisecond timings jitter by more than 3x
on a busy machine, and no caller notices a millisecond."""


@dataclass(frozen=True)
class GateOutcome:
    """One gate's verdict on one candidate."""

    gate: str
    passed: bool
    message: str = ""
    """For a refusal: what failed (without the "rejected by" prefix)."""

    @property
    def refusal(self) -> str:
        """The FAILED message a refused version carries."""
        return f"rejected by the {self.gate} gate: {self.message}"


def _shape(spec: TensorSpec) -> str:
    return "any shape" if spec.shape is None else str(list(spec.shape))


def _accepts(candidate: tuple[int, ...] | None, serving: tuple[int, ...] | None) -> bool:
    """Every tensor ``serving``'s shape admits, ``candidate``'s admits too: a dimension may
    relax to -1 (or the rank become unknown), never tighten."""
    if candidate is None:
        return True
    if serving is None or len(candidate) != len(serving):
        return False
    return all(c in (-1, s) for c, s in zip(candidate, serving, strict=True))


def signature_break(
    serving: Mapping[str, SignatureSpec], candidate: Mapping[str, SignatureSpec]
) -> str | None:
    """The first way the candidate would break a request or a reader of the serving version's
    answers: a signature gone; an input gone, added, retyped or tightened; an output gone or
    retyped. None when compatible."""
    for name, old in sorted(serving.items()):
        new = candidate.get(name)
        if new is None:
            return (
                f"signature '{name}' is gone (the new version has "
                f"{', '.join(repr(n) for n in sorted(candidate)) or 'none'})"
            )
        for key, spec in old.inputs.items():
            got = new.inputs.get(key)
            if got is None:
                return (
                    f"signature '{name}': input '{key}' is gone (the new version takes "
                    f"{', '.join(repr(n) for n in new.inputs)})"
                )
            if got.dtype != spec.dtype:
                return (
                    f"signature '{name}': input '{key}' changed from {dtype_name(spec.dtype)} "
                    f"to {dtype_name(got.dtype)}"
                )
            if not _accepts(got.shape, spec.shape):
                return (
                    f"signature '{name}': input '{key}' shape tightened from {_shape(spec)} to "
                    f"{_shape(got)}"
                )
        added = sorted(set(new.inputs) - set(old.inputs))
        if added:
            return (
                f"signature '{name}': the new version also requires input '{added[0]}', which "
                "requests to the serving version do not send"
            )
        for key, spec in old.outputs.items():
            got = new.outputs.get(key)
            if got is None:
                return (
                    f"signature '{name}': output '{key}' is gone (the new version produces "
                    f"{', '.join(repr(n) for n in new.outputs)})"
                )
            if got.dtype != spec.dtype:
                return (
                    f"signature '{name}': output '{key}' changed from {dtype_name(spec.dtype)} "
                    f"to {dtype_name(got.dtype)}"
                )
    return None


def count_nonfinite(outputs: Mapping[str, np.ndarray]) -> dict[str, int]:
    """NaN and Inf values per float (or complex) output, only those with any."""
    out = {}
    for name, array in outputs.items():
        if array.dtype.kind in "fc" and array.size:
            bad = int(array.size - np.count_nonzero(np.isfinite(array)))
            if bad:
                out[name] = bad
    return out


def nonfinite_message(
    bad: Mapping[str, int], totals: Mapping[str, int], requests: int, of: int
) -> str:
    """``output 'y': 12 of 400 values are NaN or Inf, in 3 of 100 requests``."""
    parts = [
        f"output '{name}': {count} of {totals.get(name, count)} values are NaN or Inf"
        for name, count in sorted(bad.items())
    ]
    return f"{'; '.join(parts)}, in {requests} of {of} requests"


def percentile(seconds: Sequence[float], q: float = 99.0) -> float:
    """The ``q``th percentile (nearest rank), 0.0 of nothing."""
    if not seconds:
        return 0.0
    ordered = sorted(seconds)
    rank = max(1, int(np.ceil(q / 100.0 * len(ordered))))
    return ordered[rank - 1]


def latency_regression(
    candidate: Sequence[float], serving: Sequence[float], ratio: float
) -> str | None:
    """The candidate's p99 above ``ratio`` x the serving version's (and by at least
    ``LATENCY_FLOOR_SECONDS``); None otherwise or with ``ratio`` 0."""
    if not ratio or not candidate or not serving:
        return None
    new, old = percentile(candidate), percentile(serving)
    if new > ratio * old and new - old >= LATENCY_FLOOR_SECONDS:
        return (
            f"p99 {new * 1e3:.3f} ms against the serving version's {old * 1e3:.3f} ms "
            f"(x{new / old if old else float('inf'):.1f}, limit x{ratio:g}) over "
            f"{len(candidate)} alternating runs"
        )
    return None


def _rows(array: np.ndarray) -> np.ndarray:
    return array.reshape(array.shape[0], -1) if array.ndim else array.reshape(1, 1)


def divergence(
    pairs: Iterable[tuple[Mapping[str, np.ndarray], Mapping[str, np.ndarray]]],
    limit: float,
) -> str | None:
    """Compares (candidate, serving) outputs of the same requests: a float value further than
    ``limit`` from the serving one (``|a-b| / max(1, |b|)``: absolute near zero, relative
    above one), or top-1 classes (integer and string outputs row by row; the argmax of float
    outputs of more than one column) agreeing on fewer than ``1 - limit`` of the rows."""
    if not limit:
        return None
    worst: tuple[float, str] = (0.0, "")
    agree: dict[str, list[int]] = {}
    for new_outputs, old_outputs in pairs:
        for name, old in old_outputs.items():
            new = new_outputs.get(name)
            if new is None:
                continue
            if new.shape != old.shape:
                return (
                    f"output '{name}' has shape {list(new.shape)}, the serving version's "
                    f"{list(old.shape)}"
                )
            if old.dtype.kind in "fc":
                if old.size:
                    with np.errstate(invalid="ignore", over="ignore"):
                        diff = np.abs(new - old) / np.maximum(1.0, np.abs(old))
                    top = float(np.nanmax(diff)) if np.isfinite(diff).any() else 0.0
                    if top > worst[0]:
                        worst = (top, name)
                    if old.ndim >= 2 and old.shape[-1] > 1:
                        same = np.argmax(_rows(new), axis=1) == np.argmax(_rows(old), axis=1)
                        tally = agree.setdefault(name, [0, 0])
                        tally[0] += int(same.sum())
                        tally[1] += int(same.size)
            elif old.size:
                same = (_rows(new) == _rows(old)).all(axis=1)
                tally = agree.setdefault(name, [0, 0])
                tally[0] += int(same.sum())
                tally[1] += int(same.size)
    if worst[0] > limit:
        return (
            f"output '{worst[1]}' differs from the serving version's by up to {worst[0]:.4g} "
            f"(limit {limit:g})"
        )
    for name, (same, total) in sorted(agree.items()):
        if total and same / total < 1.0 - limit:
            return (
                f"output '{name}': top-1 agrees with the serving version on {same} of {total} "
                f"rows ({same / total:.1%}, at least {1.0 - limit:.1%} needed)"
            )
    return None
