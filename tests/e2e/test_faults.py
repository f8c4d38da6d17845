"""Storage faults never take the served version away."""

from __future__ import annotations

import ctypes
import logging
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from helpers import ServerProcess, estimator_version, serving, wait_for
from swapserve_client import Client

X = {"number": np.ones([1, 1], np.float32)}


def _serving(client: Client) -> int:
    return next((s.version for s in client.status("m") if s.serving), 0)


@pytest.mark.parametrize("fault", ["missing", "empty", "version_deleted"])
def test_served_version_survives_storage_faults(
    tmp_path: Path, fault: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="swapserve")
    root = tmp_path / "root"
    estimator_version(root, 7, weight=1.0)
    with serving(root, poll_seconds=0.05) as server, Client(f"127.0.0.1:{server.port}") as client:
        if fault == "version_deleted":
            shutil.rmtree(root / "7")
        else:
            os.rename(root, tmp_path / "away")
            if fault == "empty":
                root.mkdir()
        time.sleep(0.5)  # many polls
        assert _serving(client) == 7
        np.testing.assert_allclose(client.predict("m", X)["output"], [[2.0]])
        if fault != "version_deleted":
            if fault == "empty":
                root.rmdir()
            os.rename(tmp_path / "away", root)
            time.sleep(0.5)
            assert _serving(client) == 7
        assert sum("loading version" in r.getMessage() for r in caplog.records) == 1
    if fault == "missing":
        assert any("does not exist; waiting for it" in r.getMessage() for r in caplog.records)


def _like_an_unprivileged_user() -> None:
    """``preexec_fn``: root drops the capabilities that bypass file permissions (an ordinary
    user has none of them), so a chmod 000 directory is unreadable to the server as it would be
    in production, even when the tests run as root."""
    if os.geteuid() != 0:
        return
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (_CAP_DAC_OVERRIDE, _CAP_DAC_READ_SEARCH):
        if libc.prctl(_PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP) failed")


_PR_CAPBSET_DROP, _CAP_DAC_OVERRIDE, _CAP_DAC_READ_SEARCH = 24, 1, 2


def test_permission_denied_exports(tmp_path: Path) -> None:
    root = tmp_path / "root"
    estimator_version(root, 1, weight=1.0)
    server = ServerProcess(
        "--model-name", "m", "--export-root", str(root), "--poll-seconds", "0.1",
        preexec_fn=_like_an_unprivileged_user,
    )  # fmt: skip
    try:
        with Client(f"127.0.0.1:{server.port}", timeout=30) as client:
            wait_for(lambda: _serving(client) == 1, what="version 1")
            # A new version whose variables cannot be read: it fails, 1 keeps serving.
            estimator_version(root, 2, weight=2.0)
            os.chmod(root / "2" / "variables", 0)
            status = wait_for(
                lambda: next((v for v in client.status("m") if v.version == 2 and v.error), None),
                what="version 2 to fail",
            )
            assert status.state == "FAILED"
            assert status.error.startswith("unusable files in "), status.error
            assert "variables/: permission denied" in status.error
            assert _serving(client) == 1
            np.testing.assert_allclose(client.predict("m", X)["output"], [[2.0]])
            # The whole export root unreadable: a storage fault, 1 keeps serving.
            os.chmod(root, 0)
            time.sleep(0.5)  # several polls
            assert _serving(client) == 1
            np.testing.assert_allclose(client.predict("m", X)["output"], [[2.0]])
            # Permissions fixed: the hidden files appear, so version 2 is retried on its own.
            os.chmod(root, 0o755)
            os.chmod(root / "2" / "variables", 0o755)
            wait_for(lambda: _serving(client) == 2, what="version 2 after the fix")
            np.testing.assert_allclose(client.predict("m", X)["output"], [[4.0]])
        assert server.log.count("cannot list export root") == 1  # logged once, not every poll
    finally:
        os.chmod(root, 0o755)
        if (root / "2" / "variables").exists():
            os.chmod(root / "2" / "variables", 0o755)
        assert server.stop() == 0, server.log
