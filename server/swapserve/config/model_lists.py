"""Where the list of served models comes from, re-read on SIGHUP, HandleReloadConfigRequest and
every ``--config-poll-seconds`` (a Kubernetes ConfigMap update arrives as a file change, never
as a signal).

A source is a callable returning the models to serve now: ``ConfigFileSource`` (YAML or TF
Serving's text format) or ``RepositorySource`` (a Triton-layout model repository: one model per
subdirectory). A config file is all or nothing: an invalid file raises and changes nothing. A
repository is per model: a model whose ``config.pbtxt`` is invalid keeps the settings it was
served with (or is not added), and the others still follow their directories.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

from swapserve.config import text_files
from swapserve.config.model_settings import BatchingSettings, ModelSettings, SettingsError
from swapserve.config.yaml_file import load_config

log = logging.getLogger(__name__)


class ModelSource(Protocol):
    """Reads the models to serve now."""

    def __call__(self) -> tuple[ModelSettings, ...]:
        """Raises SettingsError: the source as a whole cannot be read or is invalid."""
        ...

    @property
    def problems(self) -> Mapping[str, str]:
        """Models left out or kept at their old settings because their part is invalid, with
        the error ({} when the whole source is valid)."""
        ...

    def replaced_atomically(self) -> bool:
        """The last read found the source replaced whole since the read before (a rename, a
        ConfigMap's symlink swap): it cannot be half-written, so it need not settle."""
        ...


def with_batching(
    models: tuple[ModelSettings, ...], batching: BatchingSettings | None
) -> tuple[ModelSettings, ...]:
    """``--enable-batching`` with a config file: every model that does not batch by its own
    settings batches with the flags' (TF Serving's ``--enable_batching`` batches every model)."""
    if batching is None or not batching.enabled:
        return models
    return tuple(
        m if m.batching.enabled else dataclasses.replace(m, batching=batching) for m in models
    )


class ConfigFileSource:
    """The models of a config file (``--config``), with the flags' defaults applied: their
    batching to models that set none, and (TF Serving's text format, which cannot say them)
    their polling, settle times, warm-up and limits.

    Its ``server`` keys apply at start only, so a read that finds them changed says so once.
    """

    def __init__(self, path: Path, defaults: ModelSettings | None = None) -> None:
        self.path = path
        self._defaults = defaults
        self._file = _identity(path)  # the file (device, inode) the last read found
        self._replaced = False
        try:
            self._server: Mapping[str, Any] = dict(load_config(path).server)
        except SettingsError:
            self._server = {}

    def __call__(self) -> tuple[ModelSettings, ...]:
        """Raises SettingsError: the file is unreadable or invalid (the message names where)."""
        identity = _identity(self.path)
        self._replaced = identity != self._file and identity is not None
        self._file = identity
        config = load_config(self.path, self._defaults)
        if config.server != self._server:
            log.warning("%s: the server section changed; it applies at the next start", self.path)
            self._server = dict(config.server)
        batching = self._defaults.batching if self._defaults else None
        return with_batching(config.models, batching)

    @property
    def problems(self) -> Mapping[str, str]:
        """Always {}: a config file is valid as a whole or refused as a whole."""
        return {}

    def replaced_atomically(self) -> bool:
        """The path led to another file (inode) at the last read than at the one before."""
        return self._replaced


class RepositorySource:
    """The models of a Triton-layout repository: each subdirectory (not hidden) is a model of
    that name, its ``config.pbtxt`` (optional) read by ``triton_config``. An invalid config and
    the keys swapserve does not apply are logged once per model (again only when they change).

    Args:
        root: the repository directory.
        base: options of every model that config.pbtxt does not set (polling, settle times,
            warm-up, request limits; its batching applies to models that set none).
        served: the models served already (from a first read at start): an invalid config
            found now keeps them, and is taken as reported.
    """

    def __init__(
        self, root: Path, base: ModelSettings, served: tuple[ModelSettings, ...] = ()
    ) -> None:
        self.root = root
        self._base = base
        self._served = {m.name: m for m in served}  # what the last read returned
        self._reported: dict[str, str] = {}  # model -> the error logged for it
        self._ignored: dict[str, tuple[str, ...]] = {}  # model -> the skipped keys logged
        if served:
            _, self._reported, self._ignored = self._scan()

    def __call__(self) -> tuple[ModelSettings, ...]:
        """Raises SettingsError: the repository itself cannot be listed."""
        found, errors, ignored = self._scan()
        models: dict[str, ModelSettings] = {}
        for name in sorted({*found, *errors}):
            if name in errors:
                if self._reported.get(name) != errors[name]:
                    kept = "keeps its previous settings" if name in self._served else "not served"
                    log.error("model repository: %s (model %s: %s)", errors[name], name, kept)
                if name in self._served:
                    models[name] = self._served[name]
                continue
            if name in self._reported:
                log.info("model repository: %s/config.pbtxt is valid again", name)
            if ignored.get(name) and ignored[name] != self._ignored.get(name):
                log.info(
                    "model repository: %s/config.pbtxt: not applied by swapserve: %s",
                    name,
                    ", ".join(ignored[name]),
                )
            models[name] = found[name]
        self._reported, self._ignored = errors, ignored
        self._served = models
        return with_batching(tuple(models.values()), self._base.batching)

    def _scan(self) -> tuple[dict[str, ModelSettings], dict[str, str], dict[str, tuple[str, ...]]]:
        """Every model directory's settings, or its error; and the keys each config skipped."""

        try:
            names = sorted(
                e.name for e in os.scandir(self.root) if e.is_dir() and not e.name.startswith(".")
            )
        except OSError as err:
            raise SettingsError(
                f"cannot list model repository {self.root}: {err.strerror}"
            ) from None
        from swapserve.config import triton  # noqa: PLC0415 (protobuf, only for repositories)

        found: dict[str, ModelSettings] = {}
        errors: dict[str, str] = {}
        ignored: dict[str, tuple[str, ...]] = {}
        for name in names:
            directory = self.root / name
            try:
                text = _read(directory / triton.CONFIG_FILE)
                found[name], ignored[name] = triton.model_settings(
                    name, str(directory), text, self._base
                )
            except SettingsError as err:
                errors[name] = str(err)
        return found, errors, ignored

    @property
    def problems(self) -> Mapping[str, str]:
        """Models whose config is invalid now, with the error."""
        return dict(self._reported)

    def replaced_atomically(self) -> bool:
        """Never: a repository changes file by file, so every change settles."""
        return False


def _identity(path: Path) -> tuple[int, int] | None:
    """The (device, inode) ``path`` leads to now (symlinks followed), or None."""
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _read(path: Path) -> str | None:
    if not path.exists():
        return None
    return text_files.read(path)
