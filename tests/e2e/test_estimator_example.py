"""examples/estimator/pipeline.py in a TF 2.15 environment (``.venv-estimator``, which ``make
test`` builds): ``pip install ./client`` there changes nothing else, then the example trains a
``tf.estimator``, exports into a live server's export root and reloads it in-process."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest

from helpers import REPO, serving
from swapserve_client import Client

VENV = REPO / ".venv-estimator"


def _pip(*args: str) -> str:
    out = subprocess.run(
        [str(VENV / "bin" / "python"), "-m", "pip", "--disable-pip-version-check", *args],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout


@pytest.mark.slow
def test_the_estimator_pipeline_exports_and_reloads(tmp_path: Path) -> None:
    if not (VENV / ".installed").exists():
        if os.environ.get("CI"):
            pytest.fail(".venv-estimator is missing: make test builds it")
        pytest.skip("run `make .venv-estimator/.installed` (make test does) for this test")
    _pip("uninstall", "--quiet", "--yes", "swapserve-client")  # from an earlier run
    before = _pip("freeze", "--all")
    _pip("install", "--quiet", str(REPO / "client"))
    after = _pip("freeze", "--all")
    added = sorted(set(after.splitlines()) - set(before.splitlines()))
    removed = sorted(set(before.splitlines()) - set(after.splitlines()))
    names = [re.split(r"==| @ ", a)[0] for a in added]
    assert removed == [] and names == ["swapserve-client"], added
    assert re.search(r"^tensorflow-cpu==2\.15\.", after, re.M), after
    root = tmp_path / "seed"
    with serving(root, name="seed", wait=False, poll_seconds=600) as server:
        out = subprocess.run(
            [str(VENV / "bin" / "python"), str(REPO / "examples" / "estimator" / "pipeline.py"),
             "--export-root", str(root), "--target", f"127.0.0.1:{server.port}",
             "--model", "seed", "--slope", "3"],
            capture_output=True, text=True, timeout=600,
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
        )  # fmt: skip
        assert out.returncode == 0, out.stderr[-3000:]
        (version,) = [p.name for p in root.iterdir() if p.name.isdigit()]
        line = out.stdout.strip()
        assert line.startswith(f"serving version {version} of seed (was 0); f(100) = "), line
        assert abs(float(line.rsplit("= ", 1)[1]) - 300.0) < 1.0, line
        with Client(f"127.0.0.1:{server.port}") as client:
            served = client.predict_full("seed", {"number": np.array([[100.0]], np.float32)})
        assert served.version == int(version)
