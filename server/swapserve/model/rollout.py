"""``Rollout``: one model's safe-rollout state -- the gates a loaded version must pass, the
canary it then runs as, and the phase status reports.

The manager calls ``gate`` on its loading thread (under its load lock) after a version loaded
and warmed up and before it is added to the serving map, so no request can reach a candidate.
A version that passed starts a canary (``start_canary``) when the model has one configured;
a monitor thread then judges it (``canary.judge``) every ``TICK`` seconds and hands the
decision back to the manager (``on_decision``), which promotes or rolls back under its lock.

With ``--workers`` the ``Verdicts`` shared by the workers make the gates run once: the first
worker to gate a version publishes the outcome, the others apply it.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import zlib
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Protocol

from swapserve.config.rollout_settings import RolloutSettings
from swapserve.model import canary, gating
from swapserve.model.events import ModelEvents
from swapserve.model.gating import GateRequest
from swapserve.model.outcomes import RolloutStatus
from swapserve.model.sample import LiveSample
from swapserve.model.serving import Handle, ServingMap

log = logging.getLogger(__name__)

TICK = 0.1
"""Seconds between two judgements of a running canary."""


class Verdicts(Protocol):
    """Rollout outcomes shared between the processes serving the same models (``--workers``):
    the gates run in one of them, every one applies the same canary verdict, and they swap
    one at a time."""

    def known(self, model: str, version: int, files: int) -> str | None:
        """The refusal ("" passed) another process published for these files, or None."""
        ...

    def publish(self, model: str, version: int, files: int, refusal: str) -> None:
        """Tells the others this version's gate outcome ("" passed)."""
        ...

    def decide(
        self, model: str, version: int, files: int, decision: canary.Decision
    ) -> canary.Decision:
        """Publishes a verdict on the canary of ``version`` with these files unless one
        exists; returns the one that stands."""
        ...

    def decided(self, model: str, version: int, files: int) -> canary.Decision | None:
        """The verdict published on the canary of ``version`` with these files, if any."""
        ...

    def exclusive(self, settle: Callable[[], object]) -> AbstractContextManager[object]:
        """Held while a process loads, gates and swaps, so processes swap one at a time;
        ``settle`` (waiting for retired versions to be released) runs before it is let go."""
        ...


class LocalVerdicts:
    """One process: nothing shared."""

    def known(self, model: str, version: int, files: int) -> str | None:
        """Never known in advance."""
        return None

    def publish(self, model: str, version: int, files: int, refusal: str) -> None:
        """Nobody to tell."""

    def decide(
        self, model: str, version: int, files: int, decision: canary.Decision
    ) -> canary.Decision:
        """This process's verdict stands."""
        return decision

    def decided(self, model: str, version: int, files: int) -> canary.Decision | None:
        """Nobody else decides."""
        return None

    def exclusive(self, settle: Callable[[], object]) -> AbstractContextManager[object]:
        """Nothing to exclude (and no need to wait for releases)."""
        return contextlib.nullcontext()


def files_id(fingerprint: object) -> int:
    """A number naming a version's file set the same way in every process (``hash`` of a str
    differs between processes)."""
    return zlib.crc32(repr(fingerprint).encode())


Decide = Callable[[int, canary.Decision], None]
"""(canary version, decision) -> the manager promotes or rolls back."""


class Rollout:
    """Thread-safe. Args: the model's name, serving map, live sample, events, the decision
    callback, the verdict sharing, and a wall clock (status times) and monotonic clock."""

    def __init__(
        self,
        model: str,
        serving: ServingMap,
        sample: LiveSample,
        events: ModelEvents,
        on_decision: Decide,
        *,
        verdicts: Verdicts | None = None,
        wall: Callable[[], float] = time.time,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._model = model
        self._map = serving
        self._sample = sample
        self._events = events
        self._on_decision = on_decision
        self._verdicts: Verdicts = verdicts or LocalVerdicts()
        self._wall, self._clock = wall, clock
        self._lock = threading.Lock()  # guards _status and _monitor
        self._status = RolloutStatus()  # guarded by _lock
        self._monitor: threading.Event | None = None  # guarded by _lock: stops the running one

    @property
    def status(self) -> RolloutStatus:
        """The phase now."""
        with self._lock:
            return self._status

    def _set(self, **fields: object) -> None:
        status = RolloutStatus(since_unix=self._wall(), **fields)  # type: ignore[arg-type]
        with self._lock:
            self._status = status
        self._events.rollout(self._model, status.phase, status.version, status.canary_percent)

    # ---- gates --------------------------------------------------------------------------------

    def exclusive(self, settle: Callable[[], object]) -> AbstractContextManager[object]:
        """Held around a load-and-swap: with ``--workers``, one process at a time (until
        ``settle`` has released what the swap retired)."""
        return self._verdicts.exclusive(settle)

    def known_refusal(self, version: int, files: int, settings: RolloutSettings) -> str | None:
        """A refusal another process published for these files (so this one need not even
        load the version), or None."""
        if not settings.gates:
            return None
        known = self._verdicts.known(self._model, version, files)
        if known:
            self._note_verdict(version, self._map.served_version, known, "by another worker")
        return known or None

    def gate(self, candidate: Handle, files: int, settings: RolloutSettings) -> str | None:
        """Runs the gates on a loaded ``candidate`` against the served version; the refusal
        (``rejected by the <gate> gate: ...``) or None. ``files`` identifies its file set (so
        workers share the outcome of exactly these files). The caller holds the load lock."""
        loaded = candidate.loaded
        requests = [
            GateRequest(w.signature, w.inputs, w.output_filter, live=False)
            for w in loaded.warmup_requests
        ]
        loaded.warmup_requests = []
        if not settings.gates:
            return None
        version = candidate.version
        known = self._verdicts.known(self._model, version, files)
        if known is not None:
            self._note_verdict(version, 0, known, "by another worker")
            return known or None
        serving = self._map.acquire(0)  # held, so it stays loaded while it is compared
        previous = serving.version if serving is not None else 0
        if previous:  # a model's first version has no rollout phase (nothing to compare)
            self._set(phase="gating", version=version, previous_version=previous)
        try:
            requests += [
                GateRequest(r.signature, r.inputs, r.output_filter) for r in self._sample.requests()
            ]
            report = gating.run_gates(
                loaded, serving.loaded if serving is not None else None, requests, settings
            )
        finally:
            if serving is not None:
                self._map.release(serving)
        for outcome in report.outcomes:
            self._events.gate_checked(self._model, outcome.gate, outcome.passed)
        refused = report.refused
        refusal = refused.refusal if refused is not None else ""
        self._verdicts.publish(self._model, version, files, refusal)
        self._note_verdict(
            version,
            previous,
            refusal,
            f"gated in {report.seconds:.2f}s on {report.requests} requests: "
            f"{', '.join(o.gate for o in report.outcomes)}",
        )
        return refusal or None

    def _note_verdict(self, version: int, previous: int, refusal: str, how: str) -> None:
        fields = {"model": self._model, "version": version}
        if refusal:
            gate = refusal.split(" gate:", 1)[0].removeprefix("rejected by the ")
            self._set(phase="refused", version=version, previous_version=previous,
                      message=refusal, gate=gate)  # fmt: skip
            log.error(
                "model %s: version %d %s [%s]; it is retried when its files change, or served "
                "by a Reload with force",
                self._model, version, refusal, how, extra={**fields, "event": "refused"},
            )  # fmt: skip
            return
        log.info(
            "model %s: version %d passed the gates [%s]",
            self._model, version, how, extra={**fields, "event": "gated"},
        )  # fmt: skip

    # ---- phases the manager reports -----------------------------------------------------------

    def served(self, version: int, previous: int, *, forced: bool) -> None:
        """``version`` took all traffic without a canary (gates passed, or forced)."""
        self._stop_monitor()
        if forced:
            self._set(phase="forced", version=version, previous_version=previous,
                      message="served by a forced Reload: gates and canary skipped")  # fmt: skip
        elif previous:
            self._set(phase="promoted", version=version, previous_version=previous,
                      message="passed the gates")  # fmt: skip

    def start_canary(
        self, version: int, previous: int, files: int, settings: RolloutSettings
    ) -> None:
        """Diverts ``settings.canary_percent`` of the version-0 predictions to ``version`` and
        starts judging it against ``previous`` (which serves the rest)."""
        self._stop_monitor()
        watched, baseline = self._map.start_canary(
            version, settings.canary_percent / 100.0, self._map.run_stable
        )
        stop = threading.Event()
        with self._lock:
            self._monitor = stop
        self._set(phase="canary", version=version, previous_version=previous,
                  canary_percent=settings.canary_percent,
                  message=f"{settings.canary_percent:g}% of requests for at least "
                  f"{settings.canary_seconds:g}s")  # fmt: skip
        log.info(
            "model %s: version %d is a canary: %g%% of requests for %gs, version %d the rest",
            self._model, version, settings.canary_percent, settings.canary_seconds, previous,
            extra={"model": self._model, "version": version, "event": "canary"},
        )  # fmt: skip
        threading.Thread(
            target=self._watch,
            args=(version, files, watched, baseline, settings, stop),
            name=f"canary-{self._model}-{version}",
            daemon=True,
        ).start()

    def _watch(  # noqa: PLR0917 (one thread's arguments)
        self,
        version: int,
        files: int,
        watched: canary.Watch,
        baseline: canary.Watch,
        settings: RolloutSettings,
        stop: threading.Event,
    ) -> None:
        started = self._clock()
        while not stop.wait(TICK):
            current = self._map.canary
            if current is None or current.version != version:
                return  # ended by a pin, a force, a newer version or shutdown
            decision = self._verdicts.decided(self._model, version, files) or canary.judge(
                *canary.compared(watched, baseline), settings, self._clock() - started
            )
            if decision.action != "watch":
                decision = self._verdicts.decide(self._model, version, files, decision)
                try:
                    self._on_decision(version, decision)
                except Exception:
                    log.exception("model %s: applying the canary decision failed", self._model)
                return

    def canary_ended(self, version: int, previous: int, decision: canary.Decision) -> None:
        """The manager applied ``decision`` (promote or rollback)."""
        self._stop_monitor()
        if decision.action == "promote":
            self._set(phase="promoted", version=version, previous_version=previous,
                      message=f"canary passed: {decision.reason}")  # fmt: skip
        else:
            self._set(phase="rolled back", version=version, previous_version=previous,
                      message=f"rolled back: {decision.reason}")  # fmt: skip

    def canary_stopped(self, version: int, why: str, serving: int) -> None:
        """A canary ended without a verdict (a pin, a forced Reload, a newer version);
        ``serving`` serves every request now."""
        self._stop_monitor()
        self._set(phase="", version=version, previous_version=serving,
                  message=f"canary ended: {why}")  # fmt: skip
        log.info(
            "model %s: canary of version %d ended: %s", self._model, version, why,
            extra={"model": self._model, "version": version, "event": "canary_ended"},
        )  # fmt: skip

    def _stop_monitor(self) -> None:
        with self._lock:
            stop, self._monitor = self._monitor, None
        if stop is not None:
            stop.set()
