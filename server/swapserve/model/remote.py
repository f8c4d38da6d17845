"""Export roots in object storage (``s3://bucket/prefix``, ``gs://bucket/prefix``) via fsspec.

Each poll lists the prefix once (a failed listing backs off, up to a minute between tries), tracks
every version's file set (key, size, ETag) the way local versions are tracked, and copies the
settled versions the model may serve into a local cache directory: into a hidden staging
directory first, each file checked against the listed size, then renamed into place. The
ordinary local watcher loads them from there, so remote versions go through the same
completeness, settle, load and swap path as local ones. An empty or failed listing changes
nothing (the served version keeps serving); cached versions the model no longer needs are
deleted once they are no longer loaded.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from swapserve.config.model_settings import MAX_VERSION, SettingsError
from swapserve.model.discovery import out_of_range, version_of

log = logging.getLogger(__name__)

_GRAPH_FILES = ("saved_model.pb", "saved_model.pbtxt")
_MAX_BACKOFF = 60.0

Files = dict[str, tuple[int, str]]  # relative path -> (size, ETag)
Keep = Callable[[list[int], set[int]], set[int]]  # (settled newest first, listed) -> keep


class RemoteMirror:
    """Mirrors one model's remote export root into ``cache``.

    Args:
        model: the model's name (for logs).
        url: ``s3://bucket/prefix`` or ``gs://bucket/prefix``; credentials and endpoints come
            from the storage library's usual environment (``AWS_*``, ``AWS_ENDPOINT_URL``, ...).
        cache: the local directory the model's watcher scans.
        poll_seconds: the first backoff after a failure.
    """

    def __init__(
        self,
        model: str,
        url: str,
        cache: Path,
        poll_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        try:
            import fsspec  # type: ignore[import-untyped]  # noqa: PLC0415 (optional)

            # Its own instance: a cached one could hold an endpoint or credentials of the past.
            self._fs, self._path = fsspec.core.url_to_fs(url, skip_instance_cache=True)
        except ImportError as err:
            raise SettingsError(
                f"export root {url} needs the optional extra 's3' (from a clone: pip install -c "
                f"requirements-runtime.lock ./client '.[s3]'; gcsfs for gs://): {err}"
            ) from None
        self.model, self.url, self.cache = model, url, cache
        self._poll = poll_seconds
        self._clock = clock
        self._seen: dict[int, tuple[tuple[tuple[str, int, str], ...], float]] = {}
        self._backoff = 0.0
        self._next_try = 0.0
        self.error = ""
        """The last storage error, "" once listing works again (shown in status)."""
        self.failures = 0
        self._skipped: set[str] = set()  # out-of-range names already logged
        cache.mkdir(parents=True, exist_ok=True)

    def sync(self, settle_seconds: float, keep: Keep, force: bool = False) -> None:
        """One poll: list, then download and prune; a failure is recorded in ``error``.
        Skipped while backing off after a failure, unless ``force`` (Reload asks now)."""
        now = self._clock()
        if now < self._next_try and not force:
            return
        try:
            listing = self._list()
        except Exception as err:  # any storage or network error: back off, keep serving
            self._failed(f"listing {self.url} failed: {type(err).__name__}: {err}", now)
            return
        if not listing:
            self._recovered()
            return  # empty (or hidden by a glitch): change nothing
        settled = self._settled(listing, now, settle_seconds)
        wanted = keep(sorted(settled, reverse=True), set(listing))
        for version in sorted(wanted & set(settled), reverse=True):
            if (self.cache / str(version)).is_dir():
                continue
            try:
                self._download(version, listing[version])
            except Exception as err:  # as for listing
                self._failed(
                    f"download of version {version} failed: {type(err).__name__}: {err}", now
                )
                return
        self._prune(wanted)
        self._recovered()

    def _list(self) -> dict[int, Files]:
        self._fs.invalidate_cache(self._path)
        prefix = self._path.rstrip("/") + "/"
        versions: dict[int, Files] = {}
        for key, info in self._fs.find(self._path, detail=True).items():
            if info.get("type") == "directory" or not key.startswith(prefix):
                continue
            name, _, rel = key[len(prefix) :].partition("/")
            version = version_of(name)
            if version is None or not rel or rel.endswith("/"):
                if out_of_range(name) and name not in self._skipped:
                    self._skipped.add(name)
                    log.warning(
                        "model %s: ignoring %s/%s: version numbers go up to %d (int64, as every "
                        "API carries them)",
                        self.model,
                        self.url.rstrip("/"),
                        name,
                        MAX_VERSION,
                    )
                continue
            etag = str(info.get("ETag") or info.get("etag") or info.get("md5Hash") or "")
            versions.setdefault(version, {})[rel] = (int(info.get("size") or 0), etag)
        return versions

    def _settled(self, listing: dict[int, Files], now: float, settle: float) -> list[int]:
        """Complete versions whose file set has not changed for ``settle`` seconds."""
        out = []
        for version, files in listing.items():
            fingerprint = tuple(sorted((rel, size, etag) for rel, (size, etag) in files.items()))
            seen = self._seen.get(version)
            if seen is None or seen[0] != fingerprint:
                self._seen[version] = seen = (fingerprint, now)
            complete = any(g in files for g in _GRAPH_FILES)
            if complete and now - seen[1] >= settle * 0.95:
                out.append(version)
        for version in list(self._seen):
            if version not in listing:
                del self._seen[version]
        return out

    def _download(self, version: int, files: Files) -> None:
        staging = self.cache / f".download-{version}"
        shutil.rmtree(staging, ignore_errors=True)
        log.info(
            "model %s: downloading version %d (%d files) from %s",
            self.model,
            version,
            len(files),
            self.url,
            extra={"model": self.model, "version": version, "event": "downloading"},
        )
        try:
            for rel, (size, _) in files.items():
                target = staging / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                self._fs.get_file(f"{self._path.rstrip('/')}/{version}/{rel}", str(target))
                if os.path.getsize(target) != size:
                    raise OSError(f"{rel}: {os.path.getsize(target)} bytes, listed {size}")
            os.rename(staging, self.cache / str(version))  # whole, or not at all
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def _prune(self, wanted: set[int]) -> None:
        for entry in os.scandir(self.cache):
            if version_of(entry.name) is not None and int(entry.name) not in wanted:
                shutil.rmtree(entry.path, ignore_errors=True)
                log.info("model %s: deleted cached version %s", self.model, entry.name)

    def _failed(self, error: str, now: float) -> None:
        self.failures += 1
        self._backoff = min(_MAX_BACKOFF, max(self._poll, self._backoff * 2))
        self._next_try = now + self._backoff
        if error != self.error:
            log.warning(
                "model %s: %s; retrying in %.1fs, the loaded versions keep serving",
                self.model,
                error,
                self._backoff,
            )
        self.error = error

    def _recovered(self) -> None:
        if self.error:
            log.info("model %s: storage works again (%s)", self.model, self.url)
        self.error, self._backoff, self._next_try = "", 0.0, 0.0
