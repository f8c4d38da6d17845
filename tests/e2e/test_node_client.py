"""The Node.js example client (examples/node) against a real server."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from helpers import REPO, estimator_version, serving

EXAMPLE = REPO / "examples" / "node"
NODE = shutil.which("node")
NPM = shutil.which("npm")


@pytest.mark.skipif(NODE is None or NPM is None, reason="node and npm are not installed")
def test_node_client_predicts_and_reloads(tmp_path: Path) -> None:
    assert NODE is not None and NPM is not None
    if not (EXAMPLE / "node_modules" / "@grpc" / "grpc-js").is_dir():
        subprocess.run(
            [NPM, "ci", "--no-audit", "--no-fund"],
            cwd=EXAMPLE,
            check=True,
            timeout=600,
            capture_output=True,
        )
    estimator_version(tmp_path, 1795300968, weight=1.0)
    with serving(tmp_path, name="seed", poll_seconds=600) as server:
        estimator_version(tmp_path, 1795300999, weight=1.5)  # Reload will find it
        proc = subprocess.run(
            [NODE, "client.js", f"127.0.0.1:{server.port}", "seed"],
            cwd=EXAMPLE,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == 0, proc.stderr
        predict, reload = (json.loads(line) for line in proc.stdout.splitlines())
        assert predict["call"] == "Predict"
        assert predict["version"] == "1795300968"
        assert predict["outputs"]["output"]["shape"] == [1, 1]
        assert predict["outputs"]["output"]["values"] == pytest.approx([200.0])
        assert reload["previous_version"] == "1795300968"
        assert reload["version"] == "1795300999"
        # Errors surface with the status code name and the server's message.
        proc = subprocess.run(
            [NODE, "client.js", f"127.0.0.1:{server.port}", "nope"],
            cwd=EXAMPLE,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == 1
        assert proc.stderr.strip() == "NOT_FOUND: model 'nope' is not served here (models: 'seed')"
