"""Running the gates: a loaded candidate and the serving version answer the same requests, off
the request path, before the candidate may serve; ``gates.py`` judges what they answered.

The requests are the candidate's warm-up requests (TF Serving's warm-up records, or the zero
batches that warmed it) and the model's ``LiveSample``. Both versions run each request in turn,
alternating which goes first, so a burst of load or a GC pause hits both alike; more passes are
timed until each side has ``MIN_TIMED`` runs (within ``BUDGET_SECONDS`` each time); a latency breach
is measured a second time before it refuses.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from swapserve.config.rollout_settings import RolloutSettings
from swapserve.errors import SwapserveError
from swapserve.model import gates
from swapserve.model.gates import GateOutcome
from swapserve.model.signature import SignatureSpec

log = logging.getLogger(__name__)

MIN_TIMED = 200
"""Timed runs per side for the latency gate: its p99 is then the 2nd slowest, not the max."""
WARM_RUNS = 10
"""Untimed runs per side first (the first calls of a new session pay for lazy set-up)."""
BUDGET_SECONDS = 10.0
REPLAY_SECONDS = 30.0
"""The finite gate replays the warm-up and the sample for at most this long (a slow model's
1,000 requests at 20% of a core would take minutes); the verdict names how many it checked."""
PACE = 4.0
"""Seconds idle per second of gate runs: the gates take at most ~20% of a core from the
requests being served meanwhile, and run 5x longer (``make bench``, scenario ``rollout``: 1,001
requests gate in ~3 s under 8 saturating clients, Predict p99 meanwhile 0.96-1.14x steady)."""


class Runnable(Protocol):
    """What the gates need of a version (``LoadedVersion``)."""

    @property
    def signatures(self) -> Mapping[str, SignatureSpec]: ...

    def run(
        self,
        signature_name: str,
        inputs: Mapping[str, np.ndarray],
        output_filter: Sequence[str] = (),
    ) -> tuple[str, dict[str, np.ndarray]]: ...


@dataclass(frozen=True)
class GateRequest:
    """One request the gates replay."""

    signature: str
    inputs: Mapping[str, np.ndarray]
    output_filter: tuple[str, ...] = ()
    live: bool = True
    """From live traffic (the serving version answers it too); False: the candidate's own
    warm-up, which the serving version may not accept."""


@dataclass(frozen=True)
class GateReport:
    """Every gate that ran, in order; the last one refused if any did."""

    outcomes: tuple[GateOutcome, ...]
    requests: int
    seconds: float

    @property
    def refused(self) -> GateOutcome | None:
        """The refusing gate, if one refused."""
        last = self.outcomes[-1] if self.outcomes else None
        return last if last is not None and not last.passed else None


def _timed(
    version: Runnable, req: GateRequest, clock: Callable[[], float]
) -> tuple[dict[str, np.ndarray] | SwapserveError, float]:
    start = clock()
    try:
        _, outputs = version.run(req.signature, req.inputs, req.output_filter)
    except SwapserveError as err:
        took = clock() - start
        time.sleep(took * PACE)
        return err, took
    took = clock() - start
    time.sleep(took * PACE)
    return outputs, took


@dataclass
class _Replay:
    """What one pass over the requests saw."""

    pairs: list[tuple[Mapping[str, np.ndarray], Mapping[str, np.ndarray]]] = field(
        default_factory=list
    )
    new_times: list[float] = field(default_factory=list)
    old_times: list[float] = field(default_factory=list)
    bad: dict[str, int] = field(default_factory=dict)
    totals: dict[str, int] = field(default_factory=dict)
    bad_requests: int = 0
    failures: int = 0
    first_failure: str = ""
    checked: int = 0
    """Requests replayed (all of them unless the replay ran out of time)."""

    def problem(self) -> str | None:
        """The finite gate's refusal, if any."""
        requests = self.checked
        if self.failures:
            return (
                f"{self.failures} of {requests} requests failed on the new version that the "
                f"serving version answered; first: {self.first_failure}"
            )
        if self.bad:
            return gates.nonfinite_message(self.bad, self.totals, self.bad_requests, requests)
        return None


def _replay(
    candidate: Runnable,
    serving: Runnable | None,
    requests: Sequence[GateRequest],
    clock: Callable[[], float],
    *,
    deadline: float = float("inf"),
) -> _Replay:
    """Runs the requests (until ``deadline``) on the candidate, and the live ones on the
    serving version too when given, alternating which goes first."""
    seen = _Replay()
    for i, req in enumerate(requests):
        if clock() >= deadline:
            break
        seen.checked += 1
        both = serving is not None and req.live
        old: Any = None
        if both and i % 2:
            old, took = _timed(serving, req, clock)  # type: ignore[arg-type]
            seen.old_times.append(took)
        new, took = _timed(candidate, req, clock)
        if both:
            seen.new_times.append(took)
        if both and not i % 2:
            old, took = _timed(serving, req, clock)  # type: ignore[arg-type]
            seen.old_times.append(took)
        if isinstance(new, SwapserveError):
            if isinstance(old, SwapserveError) or not req.live:
                continue  # refused by both: the request, not the candidate
            seen.failures += 1
            seen.first_failure = seen.first_failure or f"signature '{req.signature}': {new}"
            continue
        counts = gates.count_nonfinite(new)
        for name, array in new.items():
            seen.totals[name] = seen.totals.get(name, 0) + int(array.size)
        if counts:
            seen.bad_requests += 1
            for name, count in counts.items():
                seen.bad[name] = seen.bad.get(name, 0) + count
        if both and isinstance(old, dict):
            seen.pairs.append((new, old))
    return seen


def _time_more(
    candidate: Runnable,
    serving: Runnable,
    requests: Sequence[GateRequest],
    seen: _Replay,
    *,
    deadline: float,
    clock: Callable[[], float],
) -> None:
    """Alternating timed runs until each side has ``MIN_TIMED`` (or the deadline passes)."""
    live = [r for r in requests if r.live]
    if not live:  # no traffic yet: the warm-up requests the serving version accepts
        live = [r for r in requests if not isinstance(_timed(serving, r, clock)[0], SwapserveError)]
    for req in live[:WARM_RUNS]:  # untimed: the first runs of a new session are slow
        for _ in range(max(1, WARM_RUNS // len(live))):
            _timed(candidate, req, clock)
            _timed(serving, req, clock)
    i = 0
    while live and min(len(seen.new_times), len(seen.old_times)) < MIN_TIMED:
        if clock() >= deadline:
            return
        req = live[i % len(live)]
        first, second = (candidate, serving) if i % 2 else (serving, candidate)
        for version in (first, second):
            _, took = _timed(version, req, clock)
            (seen.new_times if version is candidate else seen.old_times).append(took)
        i += 1


def _latency(
    candidate: Runnable,
    serving: Runnable,
    usable: Sequence[GateRequest],
    settings: RolloutSettings,
    clock: Callable[[], float],
) -> str | None:
    """The latency gate's refusal, or None; a breach is measured twice (one noisy burst must
    not refuse), each measurement within ``BUDGET_SECONDS``."""
    ratio = settings.gate_latency_ratio
    problem = None
    for _ in range(2):
        timed = _Replay()
        _time_more(candidate, serving, usable, timed, deadline=clock() + BUDGET_SECONDS,
                   clock=clock)  # fmt: skip
        again = gates.latency_regression(timed.new_times, timed.old_times, ratio)
        if again is None and min(len(timed.new_times), len(timed.old_times)) < 3:
            break  # nothing more could be timed: the first measurement stands
        problem = again
        if problem is None:
            break
    return problem


def run_gates(
    candidate: Runnable,
    serving: Runnable | None,
    requests: Sequence[GateRequest],
    settings: RolloutSettings,
    clock: Callable[[], float] = time.perf_counter,
) -> GateReport:
    """Runs the gates in order (``gates.GATES``); the first refusal ends the run. With nothing
    serving only the finite gate applies."""
    start = clock()
    outcomes: list[GateOutcome] = []

    def passes(gate: str, problem: str | None) -> bool:
        outcomes.append(GateOutcome(gate, problem is None, problem or ""))
        return problem is None

    usable = [r for r in requests if r.signature in candidate.signatures]
    ok = serving is None or passes(
        "signature", gates.signature_break(serving.signatures, candidate.signatures)
    )
    # Latency before the full replay: a much slower export is refused in seconds, not after
    # replaying the whole sample at its pace.
    if ok and serving is not None and settings.gate_latency_ratio:
        ok = passes("latency", _latency(candidate, serving, usable, settings, clock))
    seen = _Replay()
    if ok:
        # Sampled requests were answered by the serving version when they were served: it
        # replays them too only when its outputs are compared (the divergence gate).
        compare = serving if settings.gate_max_divergence else None
        seen = _replay(candidate, compare, usable, clock, deadline=clock() + REPLAY_SECONDS)
        ok = passes("finite", seen.problem()) and serving is not None
    if ok and settings.gate_max_divergence:
        passes("divergence", gates.divergence(seen.pairs, settings.gate_max_divergence))
    return GateReport(tuple(outcomes), seen.checked or len(usable), clock() - start)
