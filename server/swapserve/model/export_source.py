"""Where one model's versions come from: scans of its export root (mirrored first when the root
is in object storage), recorded in its ``VersionRecords``. Runs on the load path only."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

from swapserve.errors import FailedPrecondition, NotFound
from swapserve.model import discovery
from swapserve.model.events import ModelEvents
from swapserve.model.records import VersionRecords
from swapserve.model.remote import Keep, RemoteMirror

log = logging.getLogger(__name__)

Candidates = dict[int, discovery.Candidate]


class ExportSource:
    """Scans one export root; not thread-safe (the manager's load lock serialises callers).

    Args:
        name: the model's name (logs, metrics).
        root: the directory scanned (a remote root's local cache).
        remote: the object-store URL mirrored into ``root``, if any.
        poll_seconds: the first backoff after a storage failure.
        records: where each scan is recorded.
        events: told of storage errors.
        keep: which remote versions to have in the cache (see ``policy.remote_keep``).
    """

    def __init__(
        self,
        name: str,
        root: Path,
        remote: str | None,
        *,
        poll_seconds: float,
        records: VersionRecords,
        events: ModelEvents,
        keep: Keep,
    ) -> None:
        self._name = name
        self.root = root
        self._records = records
        self._events = events
        self._keep = keep
        self._mirror = RemoteMirror(name, remote, root, poll_seconds) if remote else None
        self._storage_failures = 0  # mirror failures already counted in metrics
        self._root_seen: bool | None = None  # None: not scanned yet
        self._scan_error = ""  # why the last listing of the root failed ("" if it worked)
        self._skipped: set[str] = set()  # names logged once as not versions (discovery.scan)
        self._announced: set[int] = set()  # versions logged as discovered, still on disk

    @property
    def storage_error(self) -> str:
        """Why the last scan could not see the export root: the remote root's listing or
        download error, or the local root's listing error ("" when it works)."""
        remote = self._mirror.error if self._mirror is not None else ""
        return remote or self._scan_error

    def scan(self, settle: float, force: bool = False) -> Candidates:
        """One scan: sync the mirror, list the root, record what changed. An unreadable root
        lists nothing and sets ``storage_error``; a missing one lists nothing (what is loaded
        keeps serving either way).

        Args:
            settle: the settle period (the mirror downloads settled versions only).
            force: try the remote root now even while backing off after a failure (Reload).
        """
        if self._mirror is not None:
            self._mirror.sync(settle, self._keep, force=force)
            if self._mirror.failures > self._storage_failures:
                self._events.storage_errors(
                    self._name, self._mirror.failures - self._storage_failures
                )
                self._storage_failures = self._mirror.failures
        try:
            candidates = discovery.scan(self.root, self._skipped)
        except OSError as err:
            # An unreadable root is a storage fault: keep what serves, and say so in status,
            # metrics and Reload's answer.
            error = f"cannot list export root {self.root}: {err.strerror or err}"
            if error != self._scan_error:
                log.warning("model %s: %s; keeping what is loaded", self._name, error)
            self._scan_error = error
            self._root_seen = False
            self._events.storage_errors(self._name, 1)
            return {}
        if self._scan_error:
            log.info("model %s: export root %s can be listed again", self._name, self.root)
            self._scan_error = ""
        exists = self.root.is_dir()
        if exists != self._root_seen:
            if exists:
                log.info("model %s: watching export root %s", self._name, self.root)
            else:
                log.warning(
                    "model %s: export root %s does not exist; waiting for it", self._name, self.root
                )
            self._root_seen = exists
        observed = self._records.observe(candidates)
        # A version is announced once it has a graph file: a numeric directory that is not a
        # SavedModel (yet) is no news (a root of /proc would log every process otherwise).
        self._announced &= set(candidates)
        for cand in candidates.values():
            if not cand.complete or cand.version in self._announced:
                continue
            self._announced.add(cand.version)
            log.info(
                "model %s: discovered version %d at %s",
                self._name,
                cand.version,
                cand.path,
                extra={"model": self._name, "version": cand.version, "event": "discovered"},
            )
        for version in observed.retried:
            log.info(
                "model %s: files of failed version %d changed; will retry",
                self._name,
                version,
                extra={"model": self._name, "version": version, "event": "retry"},
            )
        return candidates

    def scan_settled(
        self, settle: float, sleep: Callable[[float], None] = time.sleep
    ) -> Candidates:
        """Scans twice, ``settle`` seconds apart when needed, so Reload sees whether a version
        is still being written without waiting for a poll."""
        candidates = self.scan(settle, force=True)
        if self._mirror is not None and not (self._mirror.error or candidates):
            sleep(settle)  # a remote version seen for the first time settles over 2 listings
            candidates = self.scan(settle)
        youngest = min((self._records.age(v) for v in candidates), default=settle)
        if youngest < settle:
            sleep(settle - youngest)
            candidates = self.scan(settle)
        return candidates

    def check_pinnable(self, candidates: Candidates, version: int, settle: float) -> None:
        """Raises unless ``version`` is in the scan, complete and settled (Reload's pin).

        Raises:
            NotFound: the version is not in the export root.
            FailedPrecondition: it has no graph file yet, or its files are still changing.
        """
        cand = candidates.get(version)
        if cand is None:
            on_disk = sorted(candidates, reverse=True)[:10]
            raise NotFound(
                f"version {version} of model '{self._name}' is not in export root "
                f"{self.root} (versions there: {on_disk or 'none'})"
            )
        if not cand.complete:
            raise FailedPrecondition(
                f"version {version} of model '{self._name}' has no saved_model.pb yet"
            )
        if self._records.age(version) < settle * 0.95:
            raise FailedPrecondition(
                f"version {version} of model '{self._name}' is still being written "
                "(its files changed during the reload); retry when the copy has finished"
            )
