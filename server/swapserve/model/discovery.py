"""Finding version directories and deciding when they are complete. Pure: no TensorFlow.

``export_saved_model`` stages into ``temp-<ts>`` and renames, but rsync, ``gsutil cp`` and
friends create the final directory first and fill it over seconds or minutes. So a version is
only a candidate when it has ``saved_model.pb`` (or ``.pbtxt``; in ``model.savedmodel/`` in
Triton's layout) *and* its file set -- every relative path with its size and mtime -- has stayed
unchanged for a settle period (the settle clock and the failure memory live in ``records.py``).
"""

from __future__ import annotations

import logging
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from swapserve.config.model_settings import MAX_VERSION

log = logging.getLogger(__name__)

_GRAPH_FILES = ("saved_model.pb", "saved_model.pbtxt")
TRITON_SUBDIR = "model.savedmodel"
"""Triton's TensorFlow layout keeps the SavedModel in ``<version>/model.savedmodel/``."""

Fingerprint = tuple[tuple[str, int, int], ...]


def version_of(name: str) -> int | None:
    """The version a directory (or object-store prefix) name stands for, or None if it is not
    one: ASCII digits only (``str.isdigit`` also takes "²"), not 0 (reserved for "the served
    version" in requests) and at most ``MAX_VERSION`` (a larger number no API can carry)."""
    if not (name.isascii() and name.isdigit()):
        return None
    version = int(name)
    return version if 1 <= version <= MAX_VERSION else None


def out_of_range(name: str) -> bool:
    """An all-digit name above ``MAX_VERSION``: skipped, and worth one log line."""
    return name.isascii() and name.isdigit() and int(name) > MAX_VERSION


@dataclass(frozen=True)
class Candidate:
    """A version directory as seen by one scan."""

    version: int
    path: Path
    fingerprint: Fingerprint
    complete: bool
    """It has a SavedModel graph file (it may still be missing variables: see settling)."""
    problems: tuple[str, ...] = ()
    """What in it cannot be used, one line each: unreadable files or directories, symlinks that
    do not resolve (cycles, missing targets). A version with problems fails to load (and is
    retried when its files change)."""

    @property
    def problem(self) -> str:
        """``problems`` as one error message ("" if none)."""
        if not self.problems:
            return ""
        more = len(self.problems) - 3
        shown = "; ".join(self.problems[:3]) + (f"; and {more} more" if more > 0 else "")
        return f"unusable files in {self.path}: {shown} (it is retried when its files change)"


def scan(root: Path, skipped: set[str] | None = None) -> dict[int, Candidate]:
    """Lists the version directories under ``root`` (an empty dict if it does not exist).

    Only names made of digits count (estimator timestamps, TF Serving's ``00000123``); version 0
    is reserved for "the served version" in requests and is skipped, as are ``temp-*`` and every
    other name. When two names map to the same number (``123`` and ``0123``) the first in sorted
    order wins. A problem inside one version directory is that version's (``problems``), never
    the scan's.

    Args:
        root: the export root.
        skipped: names already reported as skipped (out of range, links leading out of the
            root); a name not in it yet is logged once and added.

    Raises:
        OSError: the root itself cannot be listed (a storage fault, for the caller to report).
    """
    found: dict[int, Candidate] = {}
    try:
        entries = sorted(os.scandir(root), key=lambda e: e.name)
    except FileNotFoundError:
        return found
    warned = skipped if skipped is not None else set()
    real_root = os.path.realpath(root)
    for entry in entries:
        version = version_of(entry.name)
        if version is None:
            if out_of_range(entry.name) and entry.name not in warned:
                warned.add(entry.name)
                log.warning(
                    "ignoring %s: version numbers go up to %d (int64, as every API carries them)",
                    entry.path,
                    MAX_VERSION,
                )
            continue
        if version in found or not _is_dir(entry):
            continue
        if entry.is_symlink() and not _inside(os.path.realpath(entry.path), real_root):
            if entry.name not in warned:
                warned.add(entry.name)
                log.warning("ignoring %s: a symlink leading outside the export root", entry.path)
            continue
        path = Path(entry.path)
        graph_at = _graph_directory(path)
        if graph_at is None:
            # No graph file yet: nothing to settle, and nothing worth walking (a numeric
            # directory that is not a SavedModel -- /proc's pids -- would cost a full walk).
            found[version] = Candidate(version=version, path=path, fingerprint=(), complete=False)
            continue
        fingerprint, problems = _fingerprint(path)
        path, complete = graph_at, True
        found[version] = Candidate(
            version=version,
            path=path,
            fingerprint=fingerprint,
            complete=complete,
            problems=problems,
        )
    return found


def _graph_directory(version_dir: Path) -> Path | None:
    """Where the version's SavedModel graph file is (the directory or its
    ``model.savedmodel/``), or None while it has none."""
    for directory in (version_dir, version_dir / TRITON_SUBDIR):
        if any(os.path.isfile(directory / g) for g in _GRAPH_FILES):
            return directory
    return None


def version_directory(cand: Candidate) -> Path:
    """The version's own directory (``cand.path`` may be its ``model.savedmodel/``)."""
    return cand.path.parent if cand.path.name == TRITON_SUBDIR else cand.path


def files_now(cand: Candidate) -> Fingerprint:
    """The version directory's fingerprint now (to tell whether it changed during a load)."""
    return _fingerprint(version_directory(cand))[0]


def unfinished(cand: Candidate, error: str) -> str:
    """Why a version that failed to load looks like a copy still arriving ("" when it does
    not): the error is about its variables and ``variables/variables.index`` is not there yet
    (rsync and object-store copies write ``saved_model.pb`` first)."""
    index = cand.path / "variables" / "variables.index"
    if "variables" in error and not index.exists():
        return f"{index.relative_to(cand.path.parent)} is missing"
    return ""


def _is_dir(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_dir()
    except OSError:  # a symlink loop as the version directory itself: not a directory
        return False


def _inside(path: str, root: str) -> bool:
    return os.path.commonpath([path, root]) == root


def _fingerprint(path: Path) -> tuple[Fingerprint, tuple[str, ...]]:
    """Every entry's (relative path, size, mtime), and the problems found.

    Never follows a link out of the version nor round a cycle: directories are walked without
    following links; a symlink is fingerprinted by itself (``rel -> target`` with the link's own
    size and mtime) plus, when it resolves inside the version, its target's size and mtime. A
    link that does not resolve is a problem. Fixing permissions makes hidden files appear, and
    fixing a link changes its entry, so the fingerprint changes and a failed version is retried.
    """
    items: list[tuple[str, int, int]] = []
    problems: list[str] = []
    real_version = os.path.realpath(path)

    def walk_error(err: OSError) -> None:
        if err.filename:
            rel = os.path.relpath(err.filename, path) + "/"
            problems.append(f"{rel}: {_reason(err)}")

    for dirpath, dirnames, filenames in os.walk(path, onerror=walk_error):
        links = [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]
        for name in [*filenames, *links]:
            full = os.path.join(dirpath, name)
            rel = os.path.relpath(full, path)
            try:
                st = os.lstat(full)
            except FileNotFoundError:  # removed while we looked: the next scan will differ
                continue
            except OSError as err:
                problems.append(f"{rel}: {_reason(err)}")
                continue
            if stat.S_ISLNK(st.st_mode):
                target = _readlink(full)
                items.append((f"{rel} -> {target}", st.st_size, st.st_mtime_ns))
                try:
                    resolved = os.stat(full)  # the kernel gives up on cycles: ELOOP
                except OSError as err:
                    problems.append(f"{rel}: symlink to {target} does not resolve: {_reason(err)}")
                    continue
                if _inside(os.path.realpath(full), real_version):
                    items.append((rel, resolved.st_size, resolved.st_mtime_ns))
                continue
            if not os.access(full, os.R_OK):
                problems.append(f"{rel}: permission denied")
            items.append((rel, st.st_size, st.st_mtime_ns))
    return tuple(sorted(items)), tuple(sorted(problems))


def _readlink(path: str) -> str:
    try:
        return os.readlink(path)
    except OSError:
        return "?"


def _reason(err: OSError) -> str:
    if isinstance(err, PermissionError):
        return "permission denied"
    return err.strerror or type(err).__name__
