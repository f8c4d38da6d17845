"""Finding version directories and deciding when they are complete. Pure: no TensorFlow.

``export_saved_model`` stages into ``temp-<ts>`` and renames, but rsync, ``gsutil cp`` and friends
create the final directory first and fill it over seconds or minutes. So a version is only a
candidate when it has ``saved_model.pb`` (or ``.pbtxt``) *and* its file set -- every relative path
with its size and mtime -- has stayed unchanged for a settle period (the settle clock and the
failure memory live in ``records.py``).
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
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
