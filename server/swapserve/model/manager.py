"""``ModelManager``: the served version of one model, and the one path that swaps it.

Request threads only touch a tiny lock to pick the served version and count themselves in and
out; TensorFlow runs with no lock held. Loads happen on the watcher thread or a Reload RPC's
thread, one at a time per model (``_load_lock``), and go: load fully -> validate and warm up ->
replace one reference -> release the old version once its in-flight requests are done (on a
reaper thread, never a request thread). A failed load leaves the served version serving.
"""

from __future__ import annotations

import enum
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from swapserve.errors import (
    FailedPrecondition,
    InvalidArgument,
    LoadError,
    NotFound,
    Unavailable,
)
from swapserve.metrics import Metrics
from swapserve.model import discovery
from swapserve.model.batching import Batcher, batchable
from swapserve.model.loaded import LoadedVersion
from swapserve.model.remote import RemoteMirror
from swapserve.model.signature import SignatureSpec
from swapserve.settings import ModelSettings, SessionSettings

log = logging.getLogger(__name__)

Loader = Callable[[int, Path, SessionSettings, bool, int], LoadedVersion]
_KEEP_ENDED = 20  # ended versions whose directory is gone, kept in status for the operator


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


@dataclass(frozen=True)
class ModelStatus:
    """Every known version, newest first, with the served and pinned versions (0: none)."""

    versions: tuple[VersionStatus, ...]
    serving_version: int
    pinned_version: int
    labels: Mapping[str, int] = field(default_factory=dict)
    storage_error: str = ""
    """The remote export root's last listing or download error ("" when it works)."""


@dataclass(frozen=True)
class ReloadOutcome:
    """What a reload changed."""

    previous_version: int
    version: int
    load_seconds: float
    pinned: bool


@dataclass(frozen=True)
class Prediction:
    """Outputs with the version and signature that produced them."""

    version: int
    signature: str
    outputs: dict[str, np.ndarray]


@dataclass
class _Record:
    state: State
    error: str = ""
    load_seconds: float = 0.0
    updated_unix: float = 0.0


class _Handle:
    """A loaded version plus its in-flight count; ``idle`` is set once retired and drained."""

    def __init__(self, loaded: LoadedVersion, batcher: Batcher | None) -> None:
        self.loaded = loaded
        self.batcher = batcher
        self.inflight = 0
        self.retired = False
        self.idle = threading.Event()


class ModelManager:
    """Serves one model from its export root; thread-safe.

    Args:
        settings: the model's name, export root and watching options.
        session: TensorFlow session options for every version.
        loader: loads one version (tests may wrap it to observe loads).
    """

    def __init__(
        self,
        settings: ModelSettings,
        session: SessionSettings,
        loader: Loader = LoadedVersion.load,
        metrics: Metrics | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = metrics or Metrics()
        self.name = settings.name
        self._session_settings = session
        self._loader = loader
        self._lock = threading.Lock()
        self._load_lock = threading.Lock()
        self._handles: dict[int, _Handle] = {}  # every loaded version
        self._served: _Handle | None = None  # the one answering requests without a version
        self._labels: dict[str, int] = dict(settings.labels)
        self._pinned = 0
        self._records: dict[int, _Record] = {}
        self._tracker = discovery.Tracker()
        self._reapers: list[threading.Thread] = []
        self._root_seen: bool | None = None
        self._closed = False
        self._unloaded = False
        self._listeners: list[Callable[[], None]] = []
        self._mirror = (
            RemoteMirror(self.name, settings.remote, settings.export_root, settings.poll_seconds)
            if settings.remote
            else None
        )
        self._storage_failures = 0

    def subscribe(self, listener: Callable[[], None]) -> None:
        """Calls ``listener()`` (on the loading thread) whenever the served version changes."""
        self._listeners.append(listener)

    def _event(self, version: int, event: str, **fields: Any) -> dict[str, Any]:
        """Structured fields for a model event's log record (JSON logs show them)."""
        return {"model": self.name, "version": version, "event": event, **fields}

    def _notify(self) -> None:
        for listener in self._listeners:
            try:
                listener()
            except Exception:
                log.exception("model %s: listener failed", self.name)

    # ---- request path -------------------------------------------------------------------------

    def predict(
        self,
        version: int,
        signature: str,
        inputs: Mapping[str, np.ndarray],
        output_filter: Sequence[str] = (),
        label: str = "",
    ) -> Prediction:
        """Runs a request on the served version (``version=0``), on a loaded ``version``, or on
        the version a ``label`` names."""
        self._check_size(sum(int(a.size) for a in inputs.values()))
        handle = self._acquire(version, label)
        try:
            loaded = handle.loaded
            sig, wanted = loaded.prepare(signature, inputs, output_filter)
            if handle.batcher is not None and batchable(sig, inputs):
                outputs = handle.batcher.submit(sig, wanted, inputs)
            else:
                start = time.perf_counter()
                outputs = loaded.execute(sig, wanted, inputs)
                self.metrics.child(self.metrics.model_run_seconds, self.name).observe(
                    time.perf_counter() - start
                )
                self.metrics.child(self.metrics.model_runs, self.name, str(loaded.version)).inc()
            return Prediction(loaded.version, sig.name, outputs)
        finally:
            self._release(handle)

    def predict_examples(
        self, version: int, signature: str, serialized: np.ndarray, method: str, label: str = ""
    ) -> Prediction:
        """Runs a classify or regress signature on serialized tf.Example protos."""
        self._check_size(int(serialized.size))
        handle = self._acquire(version, label)
        try:
            name, outputs = handle.loaded.run_examples(signature, serialized, method)
            return Prediction(handle.loaded.version, name, outputs)
        finally:
            self._release(handle)

    def signature_defs(self, version: int = 0, label: str = "") -> tuple[int, Mapping[str, Any]]:
        """The version's number and its MetaGraph SignatureDef protos."""
        handle = self._acquire(version, label)
        try:
            return handle.loaded.version, handle.loaded.signature_defs
        finally:
            self._release(handle)

    @property
    def serving_version(self) -> int:
        """The version answering version-0 requests; 0 if none."""
        return self._served_version()

    def signatures(
        self, version: int = 0, label: str = ""
    ) -> tuple[int, Mapping[str, SignatureSpec]]:
        """The version's number and signatures (the served version for 0)."""
        handle = self._acquire(version, label)
        try:
            return handle.loaded.version, handle.loaded.signatures
        finally:
            self._release(handle)

    def _check_size(self, elements: int) -> None:
        limit = self.settings.max_request_elements
        if limit is not None and elements > limit:
            raise InvalidArgument(
                f"the request has {elements} input elements; model '{self.name}' accepts at "
                f"most {limit} per request (max_request_elements)"
            )

    def _acquire(self, version: int, label: str = "") -> _Handle:
        if version < 0:
            raise InvalidArgument(f"version must be >= 0 (0: the served version), got {version}")
        if version and label:
            raise InvalidArgument("give a version or a version label, not both")
        with self._lock:
            if label:
                version = self._labels.get(label, -1)
            handle = self._handles.get(version) if version else self._served
            if handle is not None:
                handle.inflight += 1
        if handle is None:
            # Built outside the lock: the reason may look at the export root on disk.
            raise self._not_available(version, label)
        self.metrics.child(self.metrics.inflight, self.name).inc()
        return handle

    def _not_available(self, version: int, label: str) -> Exception:
        with self._lock:
            loaded = sorted(self._handles, reverse=True)
            labels = dict(self._labels)
            record = self._records.get(version)
        if label and version < 0:
            known = ", ".join(f"'{k}'" for k in sorted(labels)) or "none"
            # INVALID_ARGUMENT and this wording, as TF Serving answers an unknown label.
            return InvalidArgument(
                f"Unrecognized servable version label: '{label}' (model '{self.name}' labels: "
                f"{known})"
            )
        if not loaded:
            return Unavailable(self.unavailable_reason())
        what = f"version {version} (label '{label}')" if label else f"version {version}"
        why = ""
        if record is not None and record.state is State.FAILED:
            why = f": it failed to load: {record.error}"
        elif record is not None and record.state is State.LOADING:
            why = ": it is loading"
        return NotFound(
            f"{what} of model '{self.name}' is not loaded{why} (loaded: {loaded or 'none'}; "
            f"serving {self._served_version() or 'none'})"
        )

    def _release(self, handle: _Handle) -> None:
        self.metrics.child(self.metrics.inflight, self.name).dec()
        with self._lock:
            handle.inflight -= 1
            if handle.retired and handle.inflight == 0:
                handle.idle.set()

    def unavailable_reason(self) -> str:
        """Why nothing serves (for errors and status)."""
        if self._closed:
            return f"model '{self.name}' is shutting down"
        if self._unloaded:
            return (
                f"model '{self.name}' was unloaded; load it again with Reload or "
                "RepositoryModelLoad"
            )
        failed = sorted(
            (v for v, r in self._records.items() if r.state is State.FAILED), reverse=True
        )
        if failed:
            return (
                f"model '{self.name}' has no version loaded: version {failed[0]} failed to load: "
                f"{self._records[failed[0]].error}"
            )
        if self._mirror is not None and self._mirror.error:
            return (
                f"model '{self.name}' has no version loaded yet: {self._mirror.error} "
                "(retried with backoff)"
            )
        if not self.settings.export_root.is_dir():
            return (
                f"model '{self.name}' has no version loaded yet: waiting for export root "
                f"{self.settings.export_root} to exist"
            )
        return f"model '{self.name}' has no version loaded yet"

    # ---- status -------------------------------------------------------------------------------

    def status(self) -> ModelStatus:
        """A consistent snapshot of every known version."""
        with self._lock:
            serving = self._served.loaded.version if self._served else 0
            by_version: dict[int, list[str]] = {}
            for label, v in sorted(self._labels.items()):
                by_version.setdefault(v, []).append(label)
            versions = tuple(
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
            storage_error = self._mirror.error if self._mirror is not None else ""
            return ModelStatus(
                versions, serving, self._pinned, dict(self._labels), storage_error=storage_error
            )

    @property
    def loaded_versions(self) -> tuple[int, ...]:
        """Every loaded version, newest first."""
        with self._lock:
            return tuple(sorted(self._handles, reverse=True))

    def _set(
        self,
        version: int,
        state: State,
        error: str = "",
        load_seconds: float | None = None,
    ) -> None:
        with self._lock:
            rec = self._records.setdefault(version, _Record(state))
            rec.state, rec.error, rec.updated_unix = state, error, time.time()
            if load_seconds is not None:
                rec.load_seconds = load_seconds

    # ---- the swap path ------------------------------------------------------------------------

    def poll(self, initial: bool = False) -> None:
        """One watcher tick: rescan, then load/release versions to match the version policy,
        unless pinned.

        Args:
            initial: the first tick after start settles like Reload (two quick scans) rather
                than over a poll period, so a server starts serving at once.
        """
        settings = self.settings
        settle = settings.reload_settle_seconds if initial else settings.effective_settle_seconds
        with self._load_lock:
            if self._closed:
                return
            candidates = self._scan_settled() if initial else self._scan()
            if self._pinned or self._unloaded:
                return
            self._converge(candidates, settle)

    def reload(self, version: int = 0) -> ReloadOutcome:
        """Rescans now; follows the version policy (0, unpinning) or loads and pins ``version``.

        Raises:
            NotFound: the version is not in the export root.
            FailedPrecondition: the version is incomplete or failed to load; nothing changed.
            Unavailable: there is no complete version at all.
        """
        if version < 0:
            raise InvalidArgument(f"version must be >= 0 (0: the newest), got {version}")
        with self._load_lock:
            if self._closed:
                raise Unavailable(f"model '{self.name}' is shutting down")
            candidates = self._scan_settled()
            previous = self._served_version()
            self._unloaded = False
            if version:
                self._pin_target(candidates, version)  # raises unless loadable
            pinned_before, self._pinned = self._pinned, version
            settle = self.settings.reload_settle_seconds
            failures = self._converge(candidates, settle, retry_failed=True)
            served = self._served_version()
            target = version or self._policy_default(candidates, settle)
            if target in failures or (version and served != version):
                keeps = (
                    "nothing is serving"
                    if not served
                    else f"version {served} keeps serving"
                    if served == previous
                    else f"version {served} serves"
                )
                if version:
                    self._pinned = pinned_before
                raise FailedPrecondition(
                    f"version {target} of model '{self.name}' failed to load ({keeps}): "
                    f"{failures.get(target, 'unknown error')}"
                )
            if not served:
                raise Unavailable(
                    f"model '{self.name}' has no complete version in export root "
                    f"{self.settings.export_root}"
                )
            seconds = self._records[served].load_seconds if served != previous else 0.0
            return ReloadOutcome(previous, served, seconds, pinned=bool(version))

    def reconfigure(self, settings: ModelSettings) -> None:
        """Takes on new polling, warm-up, version policy and labels (a config reload), then
        loads and releases versions to match them now. The export root and batching are fixed
        for a manager's life (the registry builds a new one when they change)."""
        with self._load_lock:
            with self._lock:
                self.settings = settings
                self._labels = dict(settings.labels)
            log.info("model %s: settings updated", self.name, extra=self._event(0, "updated"))
            if not (self._closed or self._unloaded or self._pinned):
                self._converge(self._scan(), settings.effective_settle_seconds)

    def _policy_default(self, candidates: dict[int, discovery.Candidate], settle: float) -> int:
        """The version the policy would serve by default: the newest wanted one on disk."""
        ready = self._tracker.ready(candidates.values(), settle, retry_failed=True)
        wanted = self._wanted(ready)
        return max((c.version for c in wanted), default=0)

    def _wanted(self, ready: list[discovery.Candidate]) -> list[discovery.Candidate]:
        """The policy's versions in preference order (newest first); for ``latest: N`` every
        ready version is listed and the first N that load are kept."""
        if self._pinned:
            return [c for c in ready if c.version == self._pinned]
        specific = self.settings.versions.specific
        if specific:
            return [c for c in ready if c.version in specific]
        return ready

    def _converge(
        self,
        candidates: dict[int, discovery.Candidate],
        settle: float,
        retry_failed: bool = False,
    ) -> dict[int, str]:
        """Loads what the policy, the pin and the labels want, makes the default version serve,
        then releases the rest; the caller holds ``_load_lock``. A storage glitch (no version
        of the wanted set on disk) changes nothing; a failed load keeps what serves.

        Returns:
            The versions that failed to load, with their errors.
        """
        ready = self._tracker.ready(candidates.values(), settle, retry_failed=retry_failed)
        ready_versions = {c.version for c in ready}
        with self._lock:
            loaded = set(self._handles)
            labelled = set(self._labels.values())
        # A loaded version still on disk stays eligible even while its files are touched.
        ready += [
            c
            for v, c in candidates.items()
            if v in loaded and c.complete and v not in ready_versions
        ]
        ready.sort(key=lambda c: c.version, reverse=True)
        policy = self.settings.versions
        limit = 1 if self._pinned else len(ready) if policy.specific else policy.latest
        failures: dict[int, str] = {}
        keep: list[int] = []
        for cand in self._wanted(ready):
            if len(keep) >= limit:
                break
            if cand.version in loaded or self._load(cand, failures):
                keep.append(cand.version)
        if not keep:
            return failures  # nothing wanted could serve: leave everything as it is
        default = keep[0]
        for cand in ready:  # labelled versions stay loaded, whatever the policy says
            wanted = cand.version in labelled and cand.version not in keep
            if wanted and (cand.version in loaded or self._load(cand, failures)):
                keep.append(cand.version)
        self._commit(default, set(keep))
        return failures

    def _load(self, cand: discovery.Candidate, failures: dict[int, str]) -> bool:
        """Loads ``cand`` next to the loaded versions (not serving yet); False if it failed
        (then it is marked FAILED, logged and listed in ``failures``)."""
        self._set(cand.version, State.LOADING)
        log.info(
            "model %s: loading version %d from %s",
            self.name,
            cand.version,
            cand.path,
            extra=self._event(cand.version, "loading"),
        )
        try:
            if cand.unreadable:
                shown = ", ".join(cand.unreadable[:5])
                raise LoadError(
                    f"permission denied: the server cannot read {shown} in {cand.path} "
                    "(it is retried when its files change)"
                )
            loaded = self._loader(
                cand.version,
                cand.path,
                self._session_settings,
                self.settings.warm_up,
                self._batch_rows(),
            )
        except LoadError as err:
            self.metrics.loads.labels(self.name, "failure").inc()
            self._tracker.mark_failed(cand, str(err))
            self._set(cand.version, State.FAILED, error=str(err))
            failures[cand.version] = str(err)
            log.error(
                "model %s: version %d failed to load: %s",
                self.name,
                cand.version,
                err,
                extra=self._event(cand.version, "failed"),
            )
            return False
        self._tracker.clear_failed(cand.version)
        metrics = self.metrics
        metrics.loads.labels(self.name, "success").inc()
        metrics.load_seconds.labels(self.name).observe(loaded.load_seconds)
        metrics.loaded_versions.labels(self.name).inc()
        batching = self.settings.batching
        handle = _Handle(
            loaded,
            Batcher(loaded, batching, self.name, metrics) if batching.enabled else None,
        )
        with self._lock:
            self._handles[cand.version] = handle
            rec = self._records.setdefault(cand.version, _Record(State.AVAILABLE))
            rec.state, rec.error, rec.load_seconds = State.AVAILABLE, "", loaded.load_seconds
            rec.updated_unix = time.time()
        timing = loaded.run_thread_timing
        log.info(
            "model %s: version %d loaded in %.3fs; run thread: %s%s",
            self.name,
            cand.version,
            loaded.load_seconds,
            loaded.run_thread,
            f" (timed on {self._batch_rows()} rows: pool {timing[0] * 1e3:.3f} ms, "
            f"caller {timing[1] * 1e3:.3f} ms per call)"
            if timing
            else "",
            extra=self._event(
                cand.version,
                "loaded",
                load_seconds=loaded.load_seconds,
                run_thread=loaded.run_thread,
            ),
        )
        return True

    def _batch_rows(self) -> int:
        """Rows per model call this model will mostly run: a full batch when batching."""
        batching = self.settings.batching
        return batching.max_batch_size if batching.enabled else 1

    def _commit(self, default: int, keep: set[int]) -> None:
        """Makes ``default`` serve requests without a version and retires the versions not in
        ``keep``: one reference swap under the lock; releases happen on reaper threads."""
        with self._lock:
            old = self._served
            self._served = self._handles[default]
            retired = [h for v, h in self._handles.items() if v not in keep]
            for handle in retired:
                self._retire_locked(handle)
        previous = old.loaded.version if old is not None else 0
        if previous != default:
            self.metrics.served_version.labels(self.name).set(default)
            seconds = self._records[default].load_seconds
            if previous:
                log.info(
                    "model %s: swapped version %d -> %d (loaded in %.3fs)",
                    self.name,
                    previous,
                    default,
                    seconds,
                    extra=self._event(
                        default, "swapped", previous_version=previous, load_seconds=seconds
                    ),
                )
                self.metrics.swaps.labels(self.name).inc()
            else:
                log.info(
                    "model %s: version %d serving (loaded in %.3fs)",
                    self.name,
                    default,
                    seconds,
                    extra=self._event(default, "serving", load_seconds=seconds),
                )
        for handle in retired:
            self._start_reaper(handle)
        if previous != default or retired:
            self._notify()

    def _retire_locked(self, handle: _Handle) -> None:
        """Takes a version out of service (the caller holds ``_lock``); it is released once its
        in-flight requests are done."""
        del self._handles[handle.loaded.version]
        if self._served is handle:
            self._served = None
        handle.retired = True
        self._records[handle.loaded.version].state = State.UNLOADING
        if handle.inflight == 0:
            handle.idle.set()

    def _pin_target(
        self, candidates: dict[int, discovery.Candidate], version: int
    ) -> discovery.Candidate:
        cand = candidates.get(version)
        if cand is None:
            on_disk = sorted(candidates, reverse=True)[:10]
            raise NotFound(
                f"version {version} of model '{self.name}' is not in export root "
                f"{self.settings.export_root} (versions there: {on_disk or 'none'})"
            )
        if not cand.complete:
            raise FailedPrecondition(
                f"version {version} of model '{self.name}' has no saved_model.pb yet"
            )
        if self._tracker.age(version) < self.settings.reload_settle_seconds * 0.95:
            raise FailedPrecondition(
                f"version {version} of model '{self.name}' is still being written "
                "(its files changed during the reload); retry when the copy has finished"
            )
        return cand

    def _served_version(self) -> int:
        with self._lock:
            return self._served.loaded.version if self._served else 0

    def _scan(self, settle: float | None = None) -> dict[int, discovery.Candidate]:
        root = self.settings.export_root
        if self._mirror is not None:
            self._sync_remote(self.settings.effective_settle_seconds if settle is None else settle)
        try:
            candidates = discovery.scan(root)
        except OSError as err:
            # An unreadable root is a storage fault like a missing one: keep what serves.
            if self._root_seen is not False:
                log.warning(
                    "model %s: cannot list export root %s (%s); keeping what is loaded",
                    self.name,
                    root,
                    err.strerror,
                )
            self._root_seen = False
            return {}
        exists = root.is_dir()
        if exists != self._root_seen:
            if exists:
                log.info("model %s: watching export root %s", self.name, root)
            else:
                log.warning(
                    "model %s: export root %s does not exist; waiting for it", self.name, root
                )
            self._root_seen = exists
        self._tracker.update(candidates)
        self._sync_records(candidates)
        return candidates

    def _scan_settled(self) -> dict[int, discovery.Candidate]:
        """Scans twice, ``reload_settle_seconds`` apart when needed, so Reload sees whether a
        version is still being written without waiting for a poll."""
        settle = self.settings.reload_settle_seconds
        candidates = self._scan(settle)
        if self._mirror is not None and not (self._mirror.error or candidates):
            time.sleep(settle)  # a remote version seen for the first time settles over 2 lists
            candidates = self._scan(settle)
        youngest = min((self._tracker.age(v) for v in candidates), default=settle)
        if youngest < settle:
            time.sleep(settle - youngest)
            candidates = self._scan(settle)
        return candidates

    def _sync_remote(self, settle: float) -> None:
        assert self._mirror is not None
        self._mirror.sync(settle, self._remote_keep)
        if self._mirror.failures > self._storage_failures:
            self.metrics.child(self.metrics.storage_errors, self.name).inc(
                self._mirror.failures - self._storage_failures
            )
            self._storage_failures = self._mirror.failures

    def _remote_keep(self, settled: list[int], listed: set[int]) -> set[int]:
        """The remote versions to have in the cache: what the policy, labels and pin want (a
        version that failed to load counts, so it is not fetched again and again), and every
        loaded version still in the bucket."""
        with self._lock:
            keep = {v for v in self._handles if v in listed}
            keep |= set(self._labels.values()) & set(settled)
            pinned = self._pinned
        failed = {v for v in settled if self._tracker.failed_error(v) is not None}
        keep |= failed
        specific = self.settings.versions.specific
        if pinned:
            keep |= {pinned} & set(settled)
        elif specific:
            keep |= set(specific) & set(settled)
        else:
            keep |= set([v for v in settled if v not in failed][: self.settings.versions.latest])
        return keep

    def _sync_records(self, candidates: dict[int, discovery.Candidate]) -> None:
        for version, cand in candidates.items():
            rec = self._records.get(version)
            if rec is None:
                log.info(
                    "model %s: discovered version %d at %s",
                    self.name,
                    version,
                    cand.path,
                    extra=self._event(version, "discovered"),
                )
                self._set(version, State.START)
            elif rec.state is State.FAILED and self._tracker.failed_error(version) is None:
                log.info(
                    "model %s: files of failed version %d changed; will retry",
                    self.name,
                    version,
                    extra=self._event(version, "retry"),
                )
                self._set(version, State.START)
        with self._lock:
            for version, rec in list(self._records.items()):
                gone = version not in candidates
                if gone and rec.state in (State.START, State.FAILED):
                    rec.state, rec.updated_unix = State.END, time.time()
            ended = sorted(
                (
                    v
                    for v, r in self._records.items()
                    if r.state is State.END and v not in candidates
                ),
                reverse=True,
            )
            for version in ended[_KEEP_ENDED:]:
                del self._records[version]

    def _start_reaper(self, handle: _Handle) -> None:
        thread = threading.Thread(
            target=self._reap,
            args=(handle,),
            name=f"unload-{self.name}-{handle.loaded.version}",
            daemon=True,
        )
        self._reapers = [t for t in self._reapers if t.is_alive()]
        self._reapers.append(thread)
        thread.start()

    def _reap(self, handle: _Handle) -> None:
        handle.idle.wait()
        version = handle.loaded.version
        if handle.batcher is not None:
            handle.batcher.stop()
        handle.loaded.close()
        self.metrics.unloads.labels(self.name).inc()
        self.metrics.loaded_versions.labels(self.name).dec()
        self.metrics.forget_version(self.name, version)
        with self._lock:
            rec = self._records.get(version)
            if rec is not None and rec.state is State.UNLOADING:
                rec.state, rec.updated_unix = State.END, time.time()
        log.info(
            "model %s: unloaded version %d",
            self.name,
            version,
            extra=self._event(version, "unloaded"),
        )

    def wait_unloaded(self, timeout: float | None = None) -> bool:
        """Waits for retired versions to be released; True if all were."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for thread in list(self._reapers):
            thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        return not any(t.is_alive() for t in self._reapers)

    def unload(self) -> int:
        """Stops serving the model until the next ``reload``; the watcher loads nothing meanwhile.

        Returns:
            The version that was serving (0 if none).
        """
        with self._load_lock:
            self._unloaded = True
            version = self._retire_served()
        if version:
            log.info("model %s: unloading version %d on request", self.name, version)
        return version

    def _retire_served(self) -> int:
        """Retires every loaded version; returns the one that was serving (0 if none)."""
        with self._lock:
            old = self._served
            retired = list(self._handles.values())
            for handle in retired:
                self._retire_locked(handle)
        if not retired:
            return 0
        self.metrics.served_version.labels(self.name).set(0)
        for handle in retired:
            self._start_reaper(handle)
        self._notify()
        return old.loaded.version if old is not None else 0

    def close(self, timeout: float = 10.0) -> None:
        """Stops serving and releases every version (after in-flight requests, up to timeout)."""
        with self._load_lock:
            self._closed = True
            self._retire_served()
        if not self.wait_unloaded(timeout):
            log.warning(
                "model %s: requests still running after %.1fs; not waiting for them",
                self.name,
                timeout,
            )
