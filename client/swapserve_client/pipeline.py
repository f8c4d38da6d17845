"""The training side's one call: after ``export_saved_model`` wrote a version, make the server
serve it now and confirm it is that version (any pipeline step: an estimator script, a Keras
callback, an Airflow/TFX task)."""

from __future__ import annotations

from os import PathLike
from pathlib import Path
from typing import Any

import grpc

from swapserve_client.client import Client, ReloadResult
from swapserve_client.errors import SwapserveError


def reload_after_export(
    target: str, model: str, export_path: str | bytes | PathLike[str], **options: Any
) -> ReloadResult:
    """Calls ``Reload`` for ``model`` and checks that the version serving afterwards is the one
    in ``export_path`` (``export_root/<version>``, as ``export_saved_model`` returns it) -- or,
    on a server with a canary, that it answers its canary share (``canary_version``).

    Args:
        target: the server, ``host:port``.
        model: the model whose export root the version was written to.
        export_path: the new version's directory.
        options: passed to ``Client`` (timeout, tls_ca, metadata, …).

    Raises:
        SwapserveError: the reload failed (FAILED_PRECONDITION with the load error: the
            previous version keeps serving), or another version serves (FAILED_PRECONDITION:
            the version policy excludes it, a newer export won, or the export went to another
            model's root).
    """
    path = Path(export_path.decode() if isinstance(export_path, bytes) else export_path)
    if not path.name.isdigit():
        raise ValueError(f"{path} is not a version directory (its name must be a number)")
    with Client(target, **options) as client:
        result = client.reload(model)
    if int(path.name) not in (result.version, result.canary_version):
        raise SwapserveError(
            grpc.StatusCode.FAILED_PRECONDITION,
            f"model '{model}' serves version {result.version}, not the exported {path.name} "
            "(its version policy, or a newer export, decides what serves)",
        )
    return result
