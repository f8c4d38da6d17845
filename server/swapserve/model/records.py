"""Per-version records of one model: what each version directory is and has been.

One record per version holds everything the server remembers about it: its life-cycle state and
error (what GetModelStatus shows), its load time, and the bookkeeping that decides when it may
load -- the file set seen last (``discovery.Fingerprint``), since when it has been unchanged
(settling), and the file set it failed with (a failed version is retried only once its files
change). Pure bookkeeping: no threads of its own, no TensorFlow; the clock is injectable.
"""

from __future__ import annotations

import enum
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from swapserve.model.discovery import Candidate, Fingerprint
from swapserve.model.outcomes import RolloutStatus
from swapserve.observability.stats import VersionStats

KEEP_ENDED = 20
"""Ended versions whose directory is gone, kept in status for the operator."""


class State(enum.IntEnum):
    """A version's life cycle (numbers as in the API's ModelVersionStatus.State)."""

    START = 10
    LOADING = 20
    AVAILABLE = 30
    UNLOADING = 40
    END = 50
    FAILED = 60


@dataclass(frozen=True)
class VersionStatus:
    """One version as GetModelStatus reports it."""

    version: int
    state: State
    error: str
    serving: bool
    """It answers requests that name no version."""
    load_seconds: float
    updated_unix: float
    labels: tuple[str, ...] = ()
    stats: VersionStats | None = None
    """Its call statistics (the data plane adds them for loaded versions)."""


@dataclass(frozen=True)
class ModelStatus:
    """Every known version, newest first, with the served and pinned versions (0: none)."""

    versions: tuple[VersionStatus, ...]
    serving_version: int
    pinned_version: int
    labels: Mapping[str, int] = field(default_factory=dict)
    storage_error: str = ""
    """The export root's last listing or download error ("" when it works)."""
    rollout: RolloutStatus = field(default_factory=RolloutStatus)
    """Where the newest version's rollout stands (gates, canary)."""


@dataclass
class _Record:
    state: State
    error: str = ""
    load_seconds: float = 0.0
    updated_unix: float = 0.0
    fingerprint: Fingerprint | None = None
    """The file set of the last scan that saw the directory; None once it is gone."""
    since: float = 0.0
    """Clock time since which ``fingerprint`` has been unchanged."""
    failed_fingerprint: Fingerprint | None = None
    """The file set the last failed load had; the failure stands while the files are the same."""


@dataclass(frozen=True)
class Observed:
    """What one scan changed, for the caller to log (new versions are announced by the
    watcher once they have a graph file)."""

    retried: tuple[int, ...] = ()
    """Failed versions whose files changed: they will be tried again."""


class VersionRecords:
    """The records of one model's versions; thread-safe.

    Args:
        clock: seconds for settle ages (monotonic; tests pass a fake).
        wall: seconds since the epoch for ``updated_unix``.
    """

    def __init__(
        self,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self._clock = clock
        self._wall = wall
        self._lock = threading.Lock()  # guards _records and every record in it
        self._records: dict[int, _Record] = {}  # guarded by _lock

    # ---- discovery ----------------------------------------------------------------------------

    def observe(self, candidates: Mapping[int, Candidate]) -> Observed:
        """Records one scan: new versions start, a changed file set restarts its settle clock
        (and lifts a failure), a version with problems (unreadable files, broken links) fails
        with them unless it is loaded, versions no longer on disk that never loaded end."""
        now, wall = self._clock(), self._wall()
        retried: list[int] = []
        with self._lock:
            for version, cand in candidates.items():
                rec = self._records.get(version)
                if rec is None:
                    self._records[version] = _Record(
                        State.START, updated_unix=wall, fingerprint=cand.fingerprint, since=now
                    )
                    continue
                if rec.fingerprint != cand.fingerprint:  # changed, or back after being gone
                    rec.fingerprint, rec.since = cand.fingerprint, now
                if rec.state is State.FAILED and rec.failed_fingerprint != rec.fingerprint:
                    rec.state, rec.error, rec.updated_unix = State.START, "", wall
                    rec.failed_fingerprint = None
                    if not cand.problems:
                        retried.append(version)
            for version, cand in candidates.items():
                rec = self._records[version]
                if cand.problems and rec.state is State.START:
                    # Known unusable without a load, whatever the policy wants: say why now.
                    rec.state, rec.error, rec.updated_unix = State.FAILED, cand.problem, wall
                    rec.failed_fingerprint = cand.fingerprint
            for version, rec in self._records.items():
                if version in candidates:
                    continue
                rec.fingerprint = rec.failed_fingerprint = None
                if rec.state in (State.START, State.FAILED):
                    rec.state, rec.updated_unix = State.END, wall
            ended = sorted(
                (
                    v
                    for v, r in self._records.items()
                    if r.state is State.END and v not in candidates
                ),
                reverse=True,
            )
            for version in ended[KEEP_ENDED:]:
                del self._records[version]
        return Observed(tuple(retried))

    def age(self, version: int) -> float:
        """Seconds the version's current file set has been seen unchanged (0 if not on disk)."""
        with self._lock:
            rec = self._records.get(version)
            if rec is None or rec.fingerprint is None:
                return 0.0
            return self._clock() - rec.since

    def ready(
        self, candidates: Iterable[Candidate], settle_seconds: float, retry_failed: bool = False
    ) -> list[Candidate]:
        """The loadable candidates, newest first: complete, settled, and not failed with the
        files they have now (unless ``retry_failed``: an explicit Reload tries them again).

        Args:
            candidates: the last scan's candidates (``observe`` must have seen them).
            settle_seconds: how long a file set must have been unchanged.
            retry_failed: include versions that failed with the same file set.
        """
        # A poll that fires a hair early must not wait a whole extra interval.
        threshold = settle_seconds * 0.95
        out = [
            c
            for c in candidates
            if c.complete
            and self.age(c.version) >= threshold
            and (retry_failed or self.failed_error(c.version) is None)
        ]
        return sorted(out, key=lambda c: c.version, reverse=True)

    def failed_error(self, version: int) -> str | None:
        """The load error if the version failed with the file set it has now."""
        with self._lock:
            rec = self._records.get(version)
            if rec is None or rec.failed_fingerprint is None:
                return None
            if rec.failed_fingerprint != rec.fingerprint:
                return None
            return rec.error

    # ---- life cycle ---------------------------------------------------------------------------

    def loading(self, version: int) -> None:
        """A load of ``version`` begins."""
        self._set(version, State.LOADING)

    def failed(self, cand: Candidate, error: str) -> None:
        """A load failed; it is not retried while the version keeps these files."""
        with self._lock:
            rec = self._records.setdefault(
                cand.version,
                _Record(State.FAILED, fingerprint=cand.fingerprint, since=self._clock()),
            )
            rec.state, rec.error, rec.updated_unix = State.FAILED, error, self._wall()
            rec.failed_fingerprint = cand.fingerprint

    def waiting(
        self, version: int, fingerprint: Fingerprint, reason: str, *, changed: bool
    ) -> None:
        """A load failed on a version that is still arriving: back to START with ``reason``,
        its settle clock restarted on the files it has now (``fingerprint``). ``changed``: its
        files changed during the load, so it loads once they settle; else it was incomplete and
        loads when its files change."""
        with self._lock:
            rec = self._records.setdefault(version, _Record(State.START))
            rec.state, rec.error, rec.updated_unix = State.START, reason, self._wall()
            rec.fingerprint, rec.since = fingerprint, self._clock()
            rec.failed_fingerprint = None if changed else fingerprint

    def available(self, version: int, load_seconds: float) -> None:
        """A load succeeded (any earlier failure is forgotten)."""
        with self._lock:
            rec = self._records.setdefault(version, _Record(State.AVAILABLE))
            rec.state, rec.error, rec.updated_unix = State.AVAILABLE, "", self._wall()
            rec.load_seconds = load_seconds
            rec.failed_fingerprint = None

    def unloading(self, version: int) -> None:
        """The version was taken out of service; it is released once its requests finish. A
        version retired because it failed (a rolled-back canary) stays FAILED with its error."""
        with self._lock:
            rec = self._records.get(version)
            if rec is not None and rec.state is State.FAILED:
                return
        self._set(version, State.UNLOADING)

    def ended(self, version: int) -> None:
        """An unloading version was released."""
        with self._lock:
            rec = self._records.get(version)
            if rec is not None and rec.state is State.UNLOADING:
                rec.state, rec.updated_unix = State.END, self._wall()

    def _set(self, version: int, state: State) -> None:
        with self._lock:
            rec = self._records.setdefault(version, _Record(state))
            rec.state, rec.error, rec.updated_unix = state, "", self._wall()

    # ---- reading ------------------------------------------------------------------------------

    def load_seconds(self, version: int) -> float:
        """How long the version's last successful load took (0.0 if unknown)."""
        with self._lock:
            rec = self._records.get(version)
            return 0.0 if rec is None else rec.load_seconds

    def newest_failed(self) -> tuple[int, str] | None:
        """The newest version in FAILED state, with its error."""
        with self._lock:
            failed = [v for v, r in self._records.items() if r.state is State.FAILED]
            if not failed:
                return None
            version = max(failed)
            return version, self._records[version].error

    def statuses(self, serving: int, labels: Mapping[str, int]) -> tuple[VersionStatus, ...]:
        """Every known version, newest first, as status reports it."""
        by_version: dict[int, list[str]] = {}
        for label, v in sorted(labels.items()):
            by_version.setdefault(v, []).append(label)
        with self._lock:
            return tuple(
                VersionStatus(
                    version=v,
                    state=r.state,
                    error=r.error,
                    serving=v == serving,
                    load_seconds=r.load_seconds,
                    updated_unix=r.updated_unix,
                    labels=tuple(by_version.get(v, ())),
                )
                for v, r in sorted(self._records.items(), reverse=True)
            )
