"""Storage faults never take the served version away."""

from __future__ import annotations

import logging
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from helpers import estimator_version, serving
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
