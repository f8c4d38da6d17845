"""``ModelManager``: one model's versions, and the one path that swaps them.

A short orchestrator of parts that each have one concern:

- ``ExportSource`` (source.py) scans the export root and records what it sees;
- ``VersionRecords`` (records.py) remember each version's state, error, timings, settle clock and
  failure;
- ``policy.plan`` (policy.py) decides, from plain data, what to load, keep and serve;
- ``VersionLoader`` (loading.py) loads one version into a ``Handle``;
- ``ServingMap`` (serving.py) holds the loaded versions: the only part on the request path.

Loads happen on the watcher thread or an admin call's thread, one at a time per model
(``_load_lock``), and go: load fully -> validate and warm up -> replace one reference -> release
the old version once its in-flight requests are done (on a reaper thread, never a request
thread). A failed load leaves the served version serving.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping

import numpy as np

from swapserve.config.model_settings import MAX_VERSION, ModelSettings, SessionSettings
from swapserve.errors import (
    FailedPrecondition,
    InvalidArgument,
    Unavailable,
)
from swapserve.model import policy
from swapserve.model.canary import Decision
from swapserve.model.events import NO_EVENTS, ModelEvents
from swapserve.model.export_source import Candidates, ExportSource
from swapserve.model.flights import Flights
from swapserve.model.outcomes import Prediction, ReloadOutcome
from swapserve.model.records import ModelStatus, VersionRecords
from swapserve.model.rollout import Rollout, Verdicts
from swapserve.model.sample import LiveSample
from swapserve.model.serving import Handle, ServingMap
from swapserve.model.swaps import Swaps, event_fields
from swapserve.model.version_loader import Loader, VersionLoader, load_saved_model

__all__ = ["Loader", "ModelManager", "Prediction", "ReloadOutcome"]

log = logging.getLogger(__name__)

SWAP_RELEASE_SECONDS = 30.0
"""With ``--workers``: how long a worker waits for its old version's requests to finish before
the next worker may swap."""

RELOAD_GAP = 0.05
"""Seconds between two reload rescans of one model; callers arriving in between share the next."""


class ModelManager:
    """Serves one model from its export root; thread-safe.

    Args:
        settings: the model's name, export root and watching options.
        session: TensorFlow session options for every version.
        loader: loads one version (tests pass fakes).
        events: told of loads, swaps, unloads and runs (the metrics).
        clock: monotonic seconds for settling (tests pass a fake).
    """

    def __init__(
        self,
        settings: ModelSettings,
        session: SessionSettings,
        loader: Loader = load_saved_model,
        events: ModelEvents = NO_EVENTS,
        *,
        clock: Callable[[], float] = time.monotonic,
        verdicts: Verdicts | None = None,
    ) -> None:
        self.name = settings.name
        self._events = events
        self._load_lock = threading.Lock()  # one scan/load/swap at a time; guards _settings
        self._settings = settings  # written under _load_lock; a reference swap, read freely
        self._records = VersionRecords(clock)
        ro = settings.rollout
        self._sample = LiveSample(ro.gate_sample_requests, ro.gate_sample_bytes)
        self._versions = VersionLoader(
            self.name, session, loader, self._records, events, sample=self._sample
        )
        self._map = ServingMap(self.name, settings.labels, self._retired, self._released)
        self._rollout = Rollout(
            self.name, self._map, self._sample, events, self._canary_decided, verdicts=verdicts
        )
        self._swaps = Swaps(
            self.name, lambda: self._settings, self._records, self._versions, self._map,
            self._rollout, events, self._notify,
        )  # fmt: skip
        events.model_added(self.name, self._map)
        self._source = ExportSource(
            self.name,
            settings.export_root,
            settings.remote,
            poll_seconds=settings.poll_seconds,
            records=self._records,
            events=events,
            keep=self._remote_keep,
        )
        self._listeners: list[Callable[[], None]] = []  # set before the watcher starts
        self._flights: Flights[ReloadOutcome] = Flights(
            self._load_lock, RELOAD_GAP, f"the reload of model '{self.name}'"
        )  # concurrent reloads of one target share one rescan

    @property
    def settings(self) -> ModelSettings:
        """The model's current settings (a config reload may replace them)."""
        return self._settings

    def subscribe(self, listener: Callable[[], None]) -> None:
        """Calls ``listener()`` (on the loading thread) whenever the served version changes."""
        self._listeners.append(listener)

    def _notify(self) -> None:
        for listener in self._listeners:
            try:
                listener()
            except Exception:
                log.exception("model %s: listener failed", self.name)

    # ---- request path (the data plane resolves versions and words errors) ---------------------

    def acquire(self, version: int, label: str = "", divert: bool = False) -> Handle | None:
        """The handle serving ``version`` (0: the served one, or with ``divert`` the canary for
        its share) or ``label``, or None."""
        return self._map.acquire(version, label, divert)

    def release(self, handle: Handle) -> None:
        """Ends a request on ``handle``."""
        self._map.release(handle)

    def check_size(self, inputs: Mapping[str, np.ndarray]) -> None:
        """Raises InvalidArgument past ``max_request_elements`` (counted only with a limit)."""
        limit = self._settings.max_request_elements
        if limit is not None and (elements := sum(int(a.size) for a in inputs.values())) > limit:
            raise InvalidArgument(
                f"the request has {elements} input elements; model '{self.name}' accepts at "
                f"most {limit} per request (max_request_elements)"
            )

    # ---- state --------------------------------------------------------------------------------

    @property
    def serving_version(self) -> int:
        """The version answering version-0 requests; 0 if none."""
        return self._map.served_version

    @property
    def loaded_versions(self) -> tuple[int, ...]:
        """Every loaded version, newest first."""
        return self._map.loaded_versions

    @property
    def unloaded(self) -> bool:
        """True after an explicit unload, until the next reload: the model is out of service
        on purpose, so it does not make the server unready (as in Triton)."""
        return self._map.stopped == "unloaded"

    def status(self) -> ModelStatus:
        """Every known version with the served and pinned versions and the labels."""
        serving, pinned, labels = self._map.snapshot()
        return ModelStatus(
            self._records.statuses(serving, labels),
            serving,
            pinned,
            labels,
            storage_error=self._source.storage_error,
            rollout=self._rollout.status,
        )

    def unavailable_reason(self) -> str:
        """Why nothing serves (for errors and status)."""
        stopped = self._map.stopped
        if stopped == "closed":
            return f"model '{self.name}' is shutting down"
        if stopped == "unloaded":
            return (
                f"model '{self.name}' was unloaded; load it again with Reload or "
                "RepositoryModelLoad"
            )
        failed = self._records.newest_failed()
        if failed is not None:
            return (
                f"model '{self.name}' has no version loaded: version {failed[0]} failed to load: "
                f"{failed[1]}"
            )
        if self._source.storage_error:
            return (
                f"model '{self.name}' has no version loaded yet: {self._source.storage_error} "
                "(retried with backoff)"
            )
        if not self._source.root.is_dir():
            return (
                f"model '{self.name}' has no version loaded yet: waiting for export root "
                f"{self._source.root} to exist"
            )
        return f"model '{self.name}' has no version loaded yet"

    # ---- the swap path ------------------------------------------------------------------------

    def poll(self, initial: bool = False) -> None:
        """One watcher tick: rescan, then load/release versions to match the version policy
        (or the pin: it keeps serving, and versions labelled meanwhile load beside it).

        Args:
            initial: the first tick after start settles like Reload (two quick scans) rather
                than over a poll period, so a server starts serving at once.
        """
        settings = self._settings
        settle = settings.reload_settle_seconds if initial else settings.effective_settle_seconds
        with self._load_lock:
            if self._map.stopped == "closed":
                return
            scan = self._source.scan_settled if initial else self._source.scan
            candidates = scan(settle)
            if not self._map.stopped:  # a pin keeps serving; labelled versions still load
                self._converge(candidates, settle)

    def reload(self, version: int = 0, force: bool = False) -> ReloadOutcome:
        """Rescans now; follows the version policy (0, unpinning) or loads and pins ``version``.
        ``force`` serves it without gates or canary (and ends a canary at once).

        Concurrent reloads of one target share one rescan that began after each of them was
        called (group commit, ``flights.py``); rescans start ``RELOAD_GAP`` apart at most.

        Raises:
            NotFound: the version is not in the export root.
            FailedPrecondition: the version is incomplete, failed to load or was refused by a
                gate; nothing changed.
            Unavailable: there is no complete version at all, or the export root could not be
                scanned (``storage_error``); nothing changed.
        """
        if not 0 <= version <= MAX_VERSION:
            raise InvalidArgument(
                f"version must be from 0 (the newest) to {MAX_VERSION}, got {version}"
            )
        key = (version, force)
        return self._flights.run(key, lambda: self._reload_locked(version, force))

    def _reload_locked(self, version: int, force: bool) -> ReloadOutcome:
        """One reload; the caller holds ``_load_lock``."""
        settle = self._settings.reload_settle_seconds
        if self._map.stopped == "closed":
            raise Unavailable(f"model '{self.name}' is shutting down")
        candidates = self._source.scan_settled(settle)
        previous = self._map.served_version
        if self._source.storage_error:
            # What it would load is unknown: saying "done" would report a stale version.
            keeps = f"version {previous} keeps serving" if previous else "nothing is serving"
            raise Unavailable(
                f"model '{self.name}': the reload could not scan the export root "
                f"({self._source.storage_error}); {keeps}"
            )
        self._map.resume()
        if version:
            self._source.check_pinnable(candidates, version, settle)
        pinned_before = self._map.pinned
        self._map.set_pinned(version)
        failures = self._converge(candidates, settle, retry_failed=True, force=force)
        served = self._map.served_version
        ready = self._records.ready(candidates.values(), settle, retry_failed=True)
        target = version or policy.default_version(
            [c.version for c in ready], 0, self._settings.versions
        )
        if target in failures or (version and served != version):
            if version:
                self._map.set_pinned(pinned_before)
            raise FailedPrecondition(_not_served(self.name, target, served, previous, failures))
        if not served:
            raise Unavailable(
                f"model '{self.name}' has no complete version in export root "
                f"{self._settings.export_root}"
            )
        seconds = self._records.load_seconds(served) if served != previous else 0.0
        canary = self._map.canary
        return ReloadOutcome(
            previous,
            served,
            seconds,
            pinned=bool(version),
            canary_version=canary.version if canary is not None else 0,
            canary_percent=self._rollout.status.canary_percent if canary is not None else 0.0,
        )

    def reconfigure(self, settings: ModelSettings) -> None:
        """Takes on new polling, warm-up, version policy and labels (a config reload), then
        loads and releases versions to match them now. The export root and batching are fixed
        for a manager's life (the registry builds a new one when they change)."""
        with self._load_lock:
            self._settings = settings
            self._map.set_labels(settings.labels)
            ro = settings.rollout
            self._sample.resize(ro.gate_sample_requests, ro.gate_sample_bytes)
            log.info(
                "model %s: settings updated", self.name, extra=event_fields(self.name, 0, "updated")
            )
            if not self._map.stopped:
                settle = settings.effective_settle_seconds
                self._converge(self._source.scan(settle), settle)

    def _converge(
        self,
        candidates: Candidates,
        settle: float,
        retry_failed: bool = False,
        force: bool = False,
    ) -> dict[int, str]:
        """``Swaps.converge``, one process at a time with ``--workers`` (so a model's memory
        across them peaks near (N+1)/N of steady); the caller holds ``_load_lock``."""
        with self._rollout.exclusive(lambda: self._map.wait_unloaded(SWAP_RELEASE_SECONDS)):
            return self._swaps.converge(candidates, settle, retry_failed, force)

    def _canary_decided(self, version: int, decision: Decision) -> None:
        """The canary monitor's verdict, applied under the load lock (stale ones ignored)."""
        with self._load_lock:
            if self._swaps.decide(version, decision):
                settle = self._settings.effective_settle_seconds
                self._converge(self._source.scan(settle), settle)

    def _retired(self, version: int) -> None:
        self._records.unloading(version)

    def _released(self, version: int) -> None:
        self._events.unloaded(self.name, version)
        self._records.ended(version)
        log.info(
            "model %s: unloaded version %d",
            self.name,
            version,
            extra=event_fields(self.name, version, "unloaded"),
        )

    def _remote_keep(self, settled: list[int], listed: set[int]) -> set[int]:
        """The remote versions to have in the cache (see ``policy.remote_keep``)."""
        _, pinned, labels = self._map.snapshot()
        return policy.remote_keep(
            settled,
            listed,
            loaded=self._map.loaded_versions,
            labelled=labels.values(),
            failed=[v for v in settled if self._records.failed_error(v) is not None],
            pinned=pinned,
            policy=self._settings.versions,
        )

    # ---- stopping -----------------------------------------------------------------------------

    def wait_unloaded(self, timeout: float | None = None) -> bool:
        """Waits for retired versions to be released; True if all were."""
        return self._map.wait_unloaded(timeout)

    def unload(self) -> int:
        """Stops serving the model until the next ``reload``; the watcher loads nothing meanwhile.

        Returns:
            The version that was serving (0 if none).
        """
        with self._load_lock:
            version = self._retire_all("unloaded")
        if version:
            log.info("model %s: unloading version %d on request", self.name, version)
        return version

    def _retire_all(self, reason: str) -> int:
        previous, retired = self._map.retire_all(reason)
        if retired:
            self._events.serving(self.name, 0, previous)
            self._notify()
        return previous if retired else 0

    def close(self, timeout: float = 10.0) -> None:
        """Stops serving and releases every version (after in-flight requests, up to timeout)."""
        with self._load_lock:
            self._retire_all("closed")
        if not self.wait_unloaded(timeout):
            log.warning(
                "model %s: requests still running after %.1fs; not waiting for them",
                self.name,
                timeout,
            )


def _not_served(
    model: str, target: int, served: int, previous: int, failures: Mapping[int, str]
) -> str:
    """FAILED_PRECONDITION's words for a Reload whose version does not serve."""
    keeps = (
        "nothing is serving"
        if not served
        else f"version {served} keeps serving"
        if served == previous
        else f"version {served} serves"
    )
    error = failures.get(target, "unknown error")
    if error.startswith("rejected by the"):
        return (
            f"version {target} of model '{model}' was not served ({keeps}): {error}; "
            "Reload with force to serve it anyway"
        )
    return f"version {target} of model '{model}' failed to load ({keeps}): {error}"
