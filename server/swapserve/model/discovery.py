"""Finding version directories and deciding when they are complete. Pure: no TensorFlow.

``export_saved_model`` stages into ``temp-<ts>`` and renames, but rsync, ``gsutil cp`` and friends
create the final directory first and fill it over seconds or minutes. So a version is only a
candidate when it has ``saved_model.pb`` (or ``.pbtxt``) *and* its file set -- every relative path
with its size and mtime -- has stayed unchanged for a settle period. A version that failed to
load is not retried until its file set changes.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

_VERSION_DIR = re.compile(r"^[0-9]+$")
_GRAPH_FILES = ("saved_model.pb", "saved_model.pbtxt")

Fingerprint = tuple[tuple[str, int, int], ...]


@dataclass(frozen=True)
class Candidate:
    """A version directory as seen by one scan."""

    version: int
    path: Path
    fingerprint: Fingerprint
    complete: bool
    """It has a SavedModel graph file (it may still be missing variables: see settling)."""
    unreadable: tuple[str, ...] = ()
    """Files or directories in it the server may not read (relative paths)."""


def scan(root: Path) -> dict[int, Candidate]:
    """Lists the version directories under ``root`` (an empty dict if it does not exist).

    Only names made of digits count (estimator timestamps, TF Serving's ``00000123``); version 0
    is reserved for "the served version" in requests and is skipped, as are ``temp-*`` and every
    other name. When two names map to the same number (``123`` and ``0123``) the first in sorted
    order wins.
    """
    found: dict[int, Candidate] = {}
    try:
        entries = sorted(os.scandir(root), key=lambda e: e.name)
    except FileNotFoundError:
        return found
    real_root = os.path.realpath(root)
    for entry in entries:
        if not _VERSION_DIR.match(entry.name) or not entry.is_dir():
            continue
        if entry.is_symlink() and not _inside(os.path.realpath(entry.path), real_root):
            log.warning("ignoring %s: a symlink leading outside the export root", entry.path)
            continue
        version = int(entry.name)
        if version == 0 or version in found:
            continue
        path = Path(entry.path)
        fingerprint, unreadable = _fingerprint(path)
        names = {rel for rel, _, _ in fingerprint}
        found[version] = Candidate(
            version=version,
            path=path,
            fingerprint=fingerprint,
            complete=any(g in names for g in _GRAPH_FILES),
            unreadable=unreadable,
        )
    return found


def _inside(path: str, root: str) -> bool:
    return os.path.commonpath([path, root]) == root


def _fingerprint(path: Path) -> tuple[Fingerprint, tuple[str, ...]]:
    """Every file's (relative path, size, mtime), and what cannot be read. Fixing permissions
    makes hidden files appear, so the fingerprint changes and a failed version is retried."""
    items = []
    unreadable: list[str] = []

    def walk_error(err: OSError) -> None:
        if isinstance(err, PermissionError) and err.filename:
            unreadable.append(os.path.relpath(err.filename, path) + "/")

    for dirpath, _, filenames in os.walk(path, onerror=walk_error):
        for name in filenames:
            full = os.path.join(dirpath, name)
            try:
                st = os.stat(full)
            except FileNotFoundError:  # removed while we looked: the next scan will differ
                continue
            rel = os.path.relpath(full, path)
            if not os.access(full, os.R_OK):
                unreadable.append(rel)
            items.append((rel, st.st_size, st.st_mtime_ns))
    return tuple(sorted(items)), tuple(sorted(unreadable))


@dataclass
class _Seen:
    fingerprint: Fingerprint
    since: float
    failed_error: str | None = None
    failed_fingerprint: Fingerprint | None = None


@dataclass
class Tracker:
    """Settle and failure bookkeeping across scans of one export root."""

    clock: Callable[[], float] = time.monotonic
    _seen: dict[int, _Seen] = field(default_factory=dict)

    def update(self, candidates: dict[int, Candidate]) -> None:
        """Records one scan: a changed file set restarts that version's settle clock."""
        now = self.clock()
        for version in list(self._seen):
            if version not in candidates:
                del self._seen[version]
        for version, cand in candidates.items():
            seen = self._seen.get(version)
            if seen is None:
                self._seen[version] = _Seen(cand.fingerprint, now)
            elif seen.fingerprint != cand.fingerprint:
                seen.fingerprint, seen.since = cand.fingerprint, now

    def age(self, version: int) -> float:
        """Seconds the version's current file set has been seen unchanged (0 if unknown)."""
        seen = self._seen.get(version)
        return 0.0 if seen is None else self.clock() - seen.since

    def ready(
        self, candidates: Iterable[Candidate], settle_seconds: float, retry_failed: bool = False
    ) -> list[Candidate]:
        """The loadable candidates, newest first.

        Args:
            candidates: the last scan's candidates (``update`` must have seen them).
            settle_seconds: how long a file set must have been unchanged.
            retry_failed: include versions that failed with the same file set (explicit reload).
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

    def mark_failed(self, candidate: Candidate, error: str) -> None:
        """Remembers a failed load; the version is skipped until its files change."""
        seen = self._seen.setdefault(candidate.version, _Seen(candidate.fingerprint, self.clock()))
        seen.failed_error = error
        seen.failed_fingerprint = candidate.fingerprint

    def clear_failed(self, version: int) -> None:
        """Forgets a failure (after a successful load of the same version)."""
        seen = self._seen.get(version)
        if seen is not None:
            seen.failed_error = seen.failed_fingerprint = None

    def failed_error(self, version: int) -> str | None:
        """The load error if the version failed with the file set it has now."""
        seen = self._seen.get(version)
        if seen is None or seen.failed_error is None:
            return None
        if seen.failed_fingerprint != seen.fingerprint:
            return None
        return seen.failed_error
