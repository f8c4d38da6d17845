"""Loading one version into a ``Handle`` (with its batcher), recording and logging the outcome.

The default loader imports TensorFlow on first use, so the rest of the model core -- policy,
records, serving map, manager -- can be imported and tested without it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from swapserve.config.model_settings import (
    BatchingSettings,
    DeclaredConfig,
    ModelSettings,
    SessionSettings,
    SettingsError,
)
from swapserve.errors import LoadError
from swapserve.model.batching import Batcher
from swapserve.model.discovery import Candidate, files_now, unfinished
from swapserve.model.events import ModelEvents
from swapserve.model.records import VersionRecords
from swapserve.model.sample import LiveSample
from swapserve.model.serving import Handle
from swapserve.model.signature import DEFAULT_SIGNATURE, declared_mismatch

if TYPE_CHECKING:
    from swapserve.model.loaded_version import LoadedVersion
    from swapserve.model.warmup import RecordDecoder

log = logging.getLogger(__name__)

Loader = Callable[[int, Path, SessionSettings, bool, int], "LoadedVersion"]
"""(version, path, session settings, warm up, rows to time the run thread on) -> loaded."""


@dataclass(frozen=True)
class SavedModelLoader:
    """The loader of real exports: ``LoadedVersion.load`` (TensorFlow is imported on first
    use), warm-up records read by ``decode_record`` (the app passes the TF Serving codec's; None:
    an export with a warm-up file fails to load rather than serving cold)."""

    decode_record: RecordDecoder | None = None
    version_batching: Callable[[Path, BatchingSettings], BatchingSettings] | None = None
    """The batching of one version from a file in its directory (TF Serving's
    ``--enable_per_model_batching_parameters``: ``batching_params.pbtxt``); None: the model's."""

    def batching_for(self, path: Path, batching: BatchingSettings) -> BatchingSettings:
        """The batching version ``path`` runs with (raises SettingsError: a bad file)."""
        return batching if self.version_batching is None else self.version_batching(path, batching)

    def __call__(
        self, version: int, path: Path, session: SessionSettings, warm_up: bool, timing_rows: int
    ) -> LoadedVersion:
        from swapserve.model.loaded_version import LoadedVersion  # noqa: PLC0415

        return LoadedVersion.load(
            version, path, session, warm_up, timing_rows, decode_record=self.decode_record
        )


load_saved_model = SavedModelLoader()
"""The loader without a warm-up record decoder (tests, and the bench's in-process calls)."""


def rss_bytes() -> int:
    """This process's resident memory now (Linux ``/proc``; 0 elsewhere)."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        return 0


_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


class VersionLoader:
    """Loads versions of one model.

    Args:
        model: the model's name.
        session: TensorFlow session options for every version.
        loader: loads one version (tests pass fakes).
        records: where each load's state and outcome are recorded.
        events: told of each load's outcome.
    """

    def __init__(
        self,
        model: str,
        session: SessionSettings,
        loader: Loader,
        records: VersionRecords,
        events: ModelEvents,
        *,
        sample: LiveSample | None = None,
    ) -> None:
        self._model = model
        self._session = session
        self._loader = loader
        self._records = records
        self._events = events
        self._sample = sample

    def refuse(self, handle: Handle | None, cand: Candidate, reason: str) -> None:
        """A loaded version that must not serve (a gate refused it, or its canary was rolled
        back): FAILED with ``reason`` until its files change. ``handle``: close it (it never
        joined the serving map); None: the map retires it."""
        if handle is not None:
            if handle.batcher is not None:
                handle.batcher.stop()
            handle.loaded.close()
            self._events.unloaded(self._model, cand.version)
        self._records.failed(cand, reason)

    def _waiting_or_failed(self, cand: Candidate, err: LoadError) -> None:
        """A failed load: FAILED (an ERROR line, the failure counted) -- unless the version is
        still arriving (its files changed during the load, or its variables are not there
        yet), which is a wait, not an error: START again, one WARNING line."""
        model, version = self._model, cand.version
        now = files_now(cand)
        changed = now != cand.fingerprint
        reason = "its files changed while it loaded" if changed else unfinished(cand, str(err))
        if reason:
            self._records.waiting(version, now, f"waiting: {reason}", changed=changed)
            log.warning(
                "model %s: version %d looks like a copy still arriving (%s); it loads once its "
                "files %s",
                model, version, reason, "settle" if changed else "change",
                extra={"model": model, "version": version, "event": "waiting"},
            )  # fmt: skip
            return
        self._events.load_failed(model, version)
        self._records.failed(cand, str(err))
        log.error(
            "model %s: version %d failed to load: %s",
            model,
            version,
            err,
            extra={"model": model, "version": version, "event": "failed"},
        )

    def load(self, cand: Candidate, settings: ModelSettings) -> Handle:
        """Loads, validates and warms ``cand`` up; it does not serve until committed.

        Raises:
            LoadError: the version cannot serve (recorded as FAILED and logged).
        """
        model, events = self._model, self._events
        self._records.loading(cand.version)
        log.info(
            "model %s: loading version %d from %s",
            model,
            cand.version,
            cand.path,
            extra={"model": model, "version": cand.version, "event": "loading"},
        )
        batching = settings.batching
        rss_before = rss_bytes()
        try:
            if cand.problems:
                raise LoadError(cand.problem)
            batching = _version_batching(self._loader, cand.path, batching)
            rows = batching.max_batch_size if batching.enabled else 1  # what it will mostly run
            loaded = self._loader(cand.version, cand.path, self._session, settings.warm_up, rows)
            _check_declared(loaded, settings.declared)
        except LoadError as err:
            self._waiting_or_failed(cand, err)
            raise
        added = max(0, rss_bytes() - rss_before)
        events.loaded(model, cand.version, loaded.load_seconds, added)
        batcher = Batcher(loaded, batching, model, events) if batching.enabled else None
        self._records.available(cand.version, loaded.load_seconds)
        timing = loaded.run_thread_timing
        log.info(
            "model %s: version %d loaded in %.3fs; run thread: %s%s",
            model,
            cand.version,
            loaded.load_seconds,
            loaded.run_thread,
            f" (timed on {rows} rows: pool {timing[0] * 1e3:.3f} ms, "
            f"caller {timing[1] * 1e3:.3f} ms per call)"
            if timing
            else "",
            extra={
                "model": model,
                "version": cand.version,
                "event": "loaded",
                "load_seconds": loaded.load_seconds,
                "run_thread": loaded.run_thread,
            },
        )
        return Handle(loaded, batcher, model, events, self._sample)


def _check_declared(loaded: LoadedVersion, declared: DeclaredConfig) -> None:
    """Raises LoadError (after closing ``loaded``) when its serving signature lacks a tensor the
    model's config declares, or has it with another type or shape (Triton refuses such a model
    too)."""
    if not declared.tensors:
        return
    spec = loaded.signatures.get(DEFAULT_SIGNATURE)
    problem = (
        declared_mismatch(spec, declared)
        if spec is not None
        else f"its config declares inputs and outputs but the version has no "
        f"'{DEFAULT_SIGNATURE}' signature (it has {sorted(loaded.signatures)})"
    )
    if problem:
        loaded.close()
        raise LoadError(f"the model's config does not match this version: {problem}")


def _version_batching(loader: Loader, path: Path, batching: BatchingSettings) -> BatchingSettings:
    """The batching of the version at ``path``: from its own file when the loader reads one."""
    batching_for = getattr(loader, "batching_for", None)
    if batching_for is None:
        return batching
    try:
        chosen: BatchingSettings = batching_for(path, batching)
    except SettingsError as err:
        raise LoadError(str(err)) from None
    return chosen
