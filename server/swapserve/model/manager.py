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
from dataclasses import dataclass
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
from swapserve.model.signature import SignatureSpec
from swapserve.settings import ModelSettings, SessionSettings

log = logging.getLogger(__name__)

Loader = Callable[[int, Path, SessionSettings, bool], LoadedVersion]
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
    load_seconds: float
    updated_unix: float


@dataclass(frozen=True)
class ModelStatus:
    """Every known version, newest first, with the served and pinned versions (0: none)."""

    versions: tuple[VersionStatus, ...]
    serving_version: int
    pinned_version: int


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
        self._served: _Handle | None = None
        self._pinned = 0
        self._records: dict[int, _Record] = {}
        self._tracker = discovery.Tracker()
        self._reapers: list[threading.Thread] = []
        self._root_seen: bool | None = None
        self._closed = False
        self._unloaded = False
        self._listeners: list[Callable[[], None]] = []

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
    ) -> Prediction:
        """Runs a request on the served version (``version=0``) or on a loaded ``version``."""
        handle = self._acquire(version)
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
        self, version: int, signature: str, serialized: np.ndarray, method: str
    ) -> Prediction:
        """Runs a classify or regress signature on serialized tf.Example protos."""
        handle = self._acquire(version)
        try:
            name, outputs = handle.loaded.run_examples(signature, serialized, method)
            return Prediction(handle.loaded.version, name, outputs)
        finally:
            self._release(handle)

    def signature_defs(self, version: int = 0) -> tuple[int, Mapping[str, Any]]:
        """The version's number and its MetaGraph SignatureDef protos."""
        handle = self._acquire(version)
        try:
            return handle.loaded.version, handle.loaded.signature_defs
        finally:
            self._release(handle)

    @property
    def serving_version(self) -> int:
        """The version answering version-0 requests; 0 if none."""
        return self._served_version()

    def signatures(self, version: int = 0) -> tuple[int, Mapping[str, SignatureSpec]]:
        """The version's number and signatures (the served version for 0)."""
        handle = self._acquire(version)
        try:
            return handle.loaded.version, handle.loaded.signatures
        finally:
            self._release(handle)

    def _acquire(self, version: int) -> _Handle:
        if version < 0:
            raise InvalidArgument(f"version must be >= 0 (0: the served version), got {version}")
        with self._lock:
            handle = self._served
            if handle is not None and (not version or handle.loaded.version == version):
                handle.inflight += 1
        if handle is None:
            # Built outside the lock: the reason may look at the export root on disk.
            raise Unavailable(self._unavailable_reason())
        if version and handle.loaded.version != version:
            raise NotFound(
                f"version {version} of model '{self.name}' is not loaded; "
                f"version {handle.loaded.version} is serving"
            )
        self.metrics.child(self.metrics.inflight, self.name).inc()
        return handle

    def _release(self, handle: _Handle) -> None:
        self.metrics.child(self.metrics.inflight, self.name).dec()
        with self._lock:
            handle.inflight -= 1
            if handle.retired and handle.inflight == 0:
                handle.idle.set()

    def _unavailable_reason(self) -> str:
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
            versions = tuple(
                VersionStatus(
                    version=v,
                    state=r.state,
                    error=r.error,
                    serving=v == serving,
                    load_seconds=r.load_seconds,
                    updated_unix=r.updated_unix,
                )
                for v, r in sorted(self._records.items(), reverse=True)
            )
            return ModelStatus(versions, serving, self._pinned)

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
        """One watcher tick: rescan, then move to the newest ready version unless pinned.

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
            served = self._served_version()
            for cand in self._tracker.ready(candidates.values(), settle):
                if cand.version == served:
                    return
                try:
                    self._swap_to(cand)
                    return
                except LoadError:
                    continue  # marked FAILED and logged; an older ready version may still do

    def reload(self, version: int = 0) -> ReloadOutcome:
        """Rescans now; loads the newest version (0, unpinning) or loads and pins ``version``.

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
            if version == 0:
                ready = self._tracker.ready(
                    candidates.values(), self.settings.reload_settle_seconds, retry_failed=True
                )
                if not ready:
                    if previous:
                        self._pinned = 0
                        return ReloadOutcome(previous, previous, 0.0, pinned=False)
                    raise Unavailable(
                        f"model '{self.name}' has no complete version in export root "
                        f"{self.settings.export_root}"
                    )
                target = ready[0]
            else:
                target = self._pin_target(candidates, version)
            if target.version == previous:
                self._pinned = version
                return ReloadOutcome(previous, previous, 0.0, pinned=bool(version))
            try:
                seconds = self._swap_to(target)
            except LoadError as err:
                keeps = f"version {previous} keeps serving" if previous else "nothing is serving"
                raise FailedPrecondition(
                    f"version {target.version} of model '{self.name}' failed to load ({keeps}): "
                    f"{err}"
                ) from None
            self._pinned = version
            return ReloadOutcome(previous, target.version, seconds, pinned=bool(version))

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

    def _scan(self) -> dict[int, discovery.Candidate]:
        root = self.settings.export_root
        candidates = discovery.scan(root)
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
        candidates = self._scan()
        settle = self.settings.reload_settle_seconds
        youngest = min((self._tracker.age(v) for v in candidates), default=settle)
        if youngest < settle:
            time.sleep(settle - youngest)
            candidates = self._scan()
        return candidates

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

    def _swap_to(self, cand: discovery.Candidate) -> float:
        """Loads ``cand`` and makes it the served version; the caller holds ``_load_lock``.

        Raises:
            LoadError: the version is marked FAILED and the served version is untouched.
        """
        self._set(cand.version, State.LOADING)
        log.info(
            "model %s: loading version %d from %s",
            self.name,
            cand.version,
            cand.path,
            extra=self._event(cand.version, "loading"),
        )
        try:
            loaded = self._loader(
                cand.version, cand.path, self._session_settings, self.settings.warm_up
            )
        except LoadError as err:
            self.metrics.loads.labels(self.name, "failure").inc()
            self._tracker.mark_failed(cand, str(err))
            self._set(cand.version, State.FAILED, error=str(err))
            log.error(
                "model %s: version %d failed to load: %s",
                self.name,
                cand.version,
                err,
                extra=self._event(cand.version, "failed"),
            )
            raise
        self._tracker.clear_failed(cand.version)
        metrics = self.metrics
        metrics.loads.labels(self.name, "success").inc()
        metrics.load_seconds.labels(self.name).observe(loaded.load_seconds)
        metrics.loaded_versions.labels(self.name).inc()
        metrics.served_version.labels(self.name).set(cand.version)
        batching = self.settings.batching
        new = _Handle(
            loaded,
            Batcher(loaded, batching, self.name, metrics) if batching.enabled else None,
        )
        with self._lock:
            old, self._served = self._served, new
            rec = self._records.setdefault(cand.version, _Record(State.AVAILABLE))
            rec.state, rec.error, rec.load_seconds = State.AVAILABLE, "", loaded.load_seconds
            rec.updated_unix = time.time()
            if old is not None:
                old.retired = True
                self._records[old.loaded.version].state = State.UNLOADING
                if old.inflight == 0:
                    old.idle.set()
        self._notify()
        if old is None:
            log.info(
                "model %s: version %d serving (loaded in %.3fs)",
                self.name,
                cand.version,
                loaded.load_seconds,
                extra=self._event(cand.version, "serving", load_seconds=loaded.load_seconds),
            )
        else:
            log.info(
                "model %s: swapped version %d -> %d (loaded in %.3fs)",
                self.name,
                old.loaded.version,
                cand.version,
                loaded.load_seconds,
                extra=self._event(
                    cand.version,
                    "swapped",
                    previous_version=old.loaded.version,
                    load_seconds=loaded.load_seconds,
                ),
            )
            metrics.swaps.labels(self.name).inc()
            self._start_reaper(old)
        return loaded.load_seconds

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
        with self._lock:
            old, self._served = self._served, None
            if old is not None:
                old.retired = True
                self._records[old.loaded.version].state = State.UNLOADING
                if old.inflight == 0:
                    old.idle.set()
        if old is None:
            return 0
        self.metrics.served_version.labels(self.name).set(0)
        self._start_reaper(old)
        self._notify()
        return old.loaded.version

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
