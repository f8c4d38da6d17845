"""Exporting a model so a watching swapserve picks it up safely.

``export_model`` writes the SavedModel into ``export_root/temp-<version>`` and renames it to
``export_root/<version>`` once complete. The rename is atomic on one filesystem, so the server
never sees a half-written version directory (it would wait for it to settle anyway).
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from pathlib import Path
from typing import Any

import tensorflow as tf

log = logging.getLogger(__name__)


def next_version(export_root: Path) -> int:
    """The current Unix time, or one more than the newest existing version if that is later
    (two exports in one second, or a clock that went back, must still sort newest-last)."""
    existing = (
        [int(p.name) for p in export_root.iterdir() if p.name.isdigit()]
        if (export_root.is_dir())
        else []
    )
    return max([int(time.time()), *(v + 1 for v in existing)])


def export_model(
    model: Any,
    export_root: str | os.PathLike[str],
    signatures: Any = None,
    version: int | None = None,
) -> Path:
    """Saves ``model`` (a ``tf.Module``, Keras model or anything ``tf.saved_model.save`` takes) as
    a new version of ``export_root``, atomically.

    Args:
        model: the object to save.
        export_root: the directory the server watches; created if missing.
        signatures: passed to ``tf.saved_model.save`` (e.g. ``{"serving_default": fn}``).
        version: the version number; default ``next_version(export_root)``.

    Returns:
        The final version directory.

    Raises:
        FileExistsError: the version already exists.
    """
    root = Path(export_root)
    root.mkdir(parents=True, exist_ok=True)
    number = next_version(root) if version is None else version
    final = root / str(number)
    if final.exists():
        raise FileExistsError(f"version {number} already exists in {root}")
    staging = root / f"temp-{number}"
    if staging.exists():
        shutil.rmtree(staging)
    try:
        tf.saved_model.save(model, str(staging), signatures=signatures)
        os.rename(staging, final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    log.info("exported version %d to %s", number, final)
    return final
