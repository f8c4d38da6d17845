"""``swapserve_client`` installs into a training environment without changing it: one venv at
the lowest supported numpy/protobuf/grpcio, one at today's newest. In each, ``pip install
./client`` (dry run with a report first) adds the client and nothing else, then the client
predicts and reloads against a live server."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from helpers import REPO, estimator_version, serving

ENVIRONMENTS = {
    "floor": ["numpy==1.23.5", "protobuf==4.21.12", "grpcio==1.51.3"],
    "newest": ["numpy", "protobuf", "grpcio"],
}

SCRIPT = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    import google.protobuf, grpc
    from swapserve_client import Client

    with Client(sys.argv[1], timeout=60) as client:
        out = client.predict("seed", {"number": np.array([[1.0], [3.0]], np.float32)})
        reloaded = client.reload("seed")
    print(json.dumps({
        "numpy": np.__version__, "protobuf": google.protobuf.__version__,
        "grpcio": grpc.__version__, "output": out["output"].ravel().tolist(),
        "version": reloaded.version,
    }))
    """
)


def _pip(venv: Path, *args: str) -> str:
    out = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "--disable-pip-version-check", *args],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout


def _freeze(venv: Path) -> dict[str, str]:
    lines = _pip(venv, "freeze", "--all").splitlines()
    return dict(line.split("==", 1) for line in lines if "==" in line)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(ENVIRONMENTS))
def test_the_client_installs_without_changing_the_environment(name: str, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    _pip(venv, "install", "--quiet", *ENVIRONMENTS[name])
    before = _freeze(venv)
    report = tmp_path / "report.json"
    _pip(venv, "install", "--quiet", "--dry-run", "--report", str(report), str(REPO / "client"))
    planned = [i["metadata"]["name"] for i in json.loads(report.read_text())["install"]]
    assert planned == ["swapserve-client"], planned
    _pip(venv, "install", "--quiet", str(REPO / "client"))
    after = _freeze(venv)
    assert {k: v for k, v in after.items() if k != "swapserve-client"} == before
    root = tmp_path / "exports"
    estimator_version(root, 1, weight=1.0)
    with serving(root, name="seed", poll_seconds=600) as server:
        estimator_version(root, 2, weight=2.0)  # for the reload to find
        out = subprocess.run(
            [str(venv / "bin" / "python"), "-c", SCRIPT, f"127.0.0.1:{server.port}"],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout)
    assert result["output"] == [2.0, 6.0] and result["version"] == 2
    if name == "floor":
        assert (result["numpy"], result["protobuf"], result["grpcio"]) == (
            "1.23.5",
            "4.21.12",
            "1.51.3",
        )
    else:
        assert int(result["protobuf"].split(".")[0]) >= 6
