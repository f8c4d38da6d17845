"""``Swaps``: the one path by which one model's serving map changes -- load what the version
policy wants, put each new version through the gates, then swap (or start a canary), and the
canary's verdict. Runs on the model's loading thread, under the manager's load lock.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from swapserve.config.model_settings import ModelSettings
from swapserve.errors import LoadError
from swapserve.model import policy
from swapserve.model.canary import Decision
from swapserve.model.discovery import Candidate
from swapserve.model.events import ModelEvents
from swapserve.model.export_source import Candidates
from swapserve.model.records import VersionRecords
from swapserve.model.rollout import Rollout, files_id
from swapserve.model.serving import ServingMap
from swapserve.model.version_loader import VersionLoader

log = logging.getLogger(__name__)


def event_fields(model: str, version: int, event: str, **fields: Any) -> dict[str, Any]:
    """Structured fields for a model event's log record (JSON logs show them)."""
    return {"model": model, "version": version, "event": event, **fields}


class Swaps:
    """Not thread-safe on its own: every method runs under the manager's load lock.

    Args:
        name: the model's name.
        settings: the model's current settings (a config reload may replace them).
        records, versions, serving, rollout, events: the manager's parts.
        notify: tells the manager's listeners the served version changed.
    """

    def __init__(  # noqa: PLR0917 (the manager's parts, each named)
        self,
        name: str,
        settings: Callable[[], ModelSettings],
        records: VersionRecords,
        versions: VersionLoader,
        serving: ServingMap,
        rollout: Rollout,
        events: ModelEvents,
        notify: Callable[[], None],
    ) -> None:
        self.name = name
        self._settings = settings
        self._records = records
        self._versions = versions
        self._map = serving
        self._rollout = rollout
        self._events = events
        self._notify = notify
        self._canary_files: Candidate | None = None  # under the load lock: the canary's files

    def converge(
        self,
        candidates: Candidates,
        settle: float,
        retry_failed: bool = False,
        force: bool = False,
    ) -> dict[int, str]:
        """Loads what the policy wants, one plan step at a time, each new version through the
        gates (unless ``force``), then makes the plan's default serve (first as a canary when
        the model has one) and releases the rest; the caller holds ``_load_lock``.

        Returns:
            The versions that failed to load or were refused, with their errors.
        """
        ready = self._records.ready(candidates.values(), settle, retry_failed=retry_failed)
        eligible = {c.version for c in ready}
        # A loaded version still on disk stays eligible even while its files are touched --
        # unless it failed since (a rolled-back canary).
        eligible |= {
            v
            for v in self._map.loaded_versions
            if v in candidates and candidates[v].complete and self._records.failed_error(v) is None
        }
        failures: dict[int, str] = {}
        fresh: set[int] = set()
        while True:
            step = policy.plan(
                policy.PolicyView(
                    eligible=tuple(sorted(eligible, reverse=True)),
                    loaded=frozenset(self._map.loaded_versions),
                    failed=frozenset(failures),
                    pinned=self._map.pinned,
                    labelled=frozenset(self._map.labels.values()),
                    policy=self._settings().versions,
                )
            )
            if step.load:
                cand = candidates[step.load]
                gates = self._settings().rollout
                known = None if force else self._rollout.known_refusal(
                    step.load, files_id(cand.fingerprint), gates
                )  # fmt: skip
                if known:
                    self._records.failed(cand, known)
                    failures[step.load] = known
                    continue
                try:
                    handle = self._versions.load(cand, self._settings())
                except LoadError as err:
                    failures[step.load] = str(err)
                    continue
                refusal = None if force else self._rollout.gate(
                    handle, files_id(cand.fingerprint), gates
                )  # fmt: skip
                if refusal:
                    self._versions.refuse(handle, cand, refusal)
                    failures[step.load] = refusal
                    continue
                self._map.add(handle)
                fresh.add(step.load)
                continue
            if not step.changes_nothing:
                self._commit(step.serve, step.keep, candidates, fresh, force)
            return failures

    def _commit(
        self,
        default: int,
        keep: frozenset[int],
        candidates: Candidates,
        fresh: set[int],
        force: bool,
    ) -> None:
        """Makes ``default`` serve requests without a version and retires the rest -- or, for a
        version that just passed the gates of a model with a canary, lets it answer its share
        beside the version serving now."""
        canary, served = self._map.canary, self._map.served_version
        if canary is not None:
            if default == canary.version and not (force or self._map.pinned):
                self._notify_if(self._map.commit(served, keep | {served})[1])  # the canary goes on
                return
            self._map.end_canary()
            why = "forced" if force else "pinned" if self._map.pinned else "superseded"
            self._rollout.canary_stopped(
                canary.version, f"{why} (version {default} serves)", default
            )
        rollout = self._settings().rollout
        if rollout.canary and not force and served and default != served and default in fresh:
            self._notify_if(self._map.commit(served, keep | {served})[1])
            self._canary_files = candidates[default]
            files = files_id(candidates[default].fingerprint)
            self._rollout.start_canary(default, served, files, rollout)
            self._notify()
            return
        previous, retired = self._map.commit(default, keep)
        if previous != default:
            self._events.serving(self.name, default, previous)
            if default in fresh or force:
                self._rollout.served(default, previous, forced=force)
            self._log_swap(default, previous, "")
        if previous != default or retired:
            self._notify()

    def _notify_if(self, retired: list[int]) -> None:
        """Tells the listeners when a commit retired versions."""
        if retired:
            self._notify()

    def _log_swap(self, default: int, previous: int, how: str) -> None:
        seconds = self._records.load_seconds(default)
        if previous:
            log.info(
                "model %s: swapped version %d -> %d%s (loaded in %.3fs)",
                self.name, previous, default, how, seconds,
                extra=event_fields(self.name,
                    default, "swapped", previous_version=previous, load_seconds=seconds
                ),
            )  # fmt: skip
        else:
            log.info(
                "model %s: version %d serving (loaded in %.3fs)",
                self.name, default, seconds,
                extra=event_fields(self.name, default, "serving", load_seconds=seconds),
            )  # fmt: skip

    def decide(self, version: int, decision: Decision) -> bool:
        """Applies the canary monitor's verdict on ``version`` (the caller holds the load
        lock); False if it is stale (that canary already ended). The caller then converges,
        which releases the version that lost."""
        canary = self._map.canary
        if canary is None or canary.version != version or self._map.stopped:
            return False
        if decision.action == "promote":
            new, previous = self._map.promote()
            self._events.serving(self.name, new, previous)
            self._log_swap(new, previous, f" after its canary: {decision.reason}")
        else:
            previous = self._map.served_version
            self._map.end_canary()
            if self._canary_files is not None:
                self._versions.refuse(None, self._canary_files, f"rolled back: {decision.reason}")
        self._rollout.canary_ended(version, previous, decision)
        self._notify()
        return True
