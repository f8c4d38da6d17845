"""docs/migrating.md's examples, run as written: each ``<!-- tested: NAME -->`` block is a bash
script; its ``# {...}`` / ``# [...]`` comment lines are the JSON lines it must print, in order.
Only ``/models`` (a temporary copy of the test models) and the ports (free ones) change."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import HALF_PLUS_TWO, REPO, copy_version

DOC = REPO / "docs" / "migrating.md"
_BLOCK = re.compile(r"<!-- tested: (\w+) -->\n```sh\n(.*?)```", re.DOTALL)
_PORTS = ("8000", "8001", "8080", "8081", "8500", "8501")


def _blocks() -> dict[str, str]:
    return dict(_BLOCK.findall(DOC.read_text()))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _models(root: Path) -> Path:
    models = root / "models"
    copy_version(HALF_PLUS_TWO, models / "half_plus_two", 123)
    model = models / "repo" / "half_plus_two"
    shutil.copytree(HALF_PLUS_TWO, model / "1" / "model.savedmodel")
    (model / "config.pbtxt").write_text(
        'name: "half_plus_two"\nplatform: "tensorflow_savedmodel"\nmax_batch_size: 8\n'
        'input [ { name: "x" data_type: TYPE_FP32 dims: [ 1 ] } ]\n'
        'output [ { name: "y" data_type: TYPE_FP32 dims: [ 1 ] } ]\n'
        "dynamic_batching { }\n"
    )
    return models


def test_every_example_is_tested() -> None:
    assert sorted(_blocks()) == ["mlserver", "tfserving", "triton"]


@pytest.mark.parametrize("name", ["tfserving", "triton", "mlserver"])
def test_example(name: str, tmp_path: Path) -> None:
    script = _blocks()[name]
    expected = [json.loads(line[2:]) for line in script.splitlines() if re.match(r"# [\[{]", line)]
    script = re.sub(r"(?<=[= ])/models/", f"{_models(tmp_path)}/", script)
    for port in _PORTS:
        script = re.sub(rf"\b{port}\b", str(_free_port()), script)
    bin_dir = str(Path(sys.executable).parent)
    env = {**os.environ, "PATH": bin_dir + os.pathsep + os.environ["PATH"],
           "TF_CPP_MIN_LOG_LEVEL": "2"}  # fmt: skip
    # The servers the script starts in the background stop when it ends.
    wrapped = "set -e\ntrap 'kill $(jobs -p) 2>/dev/null; wait' EXIT\n" + script
    out = subprocess.run(
        ["bash", "-c", wrapped], cwd=tmp_path, env=env, capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    assert _json_values(out.stdout) == expected, out.stderr[-3000:]


def _json_values(text: str) -> list[object]:
    """The JSON values printed one after another (curl adds no newline after a body)."""
    decoder, values, at = json.JSONDecoder(), [], 0
    while (at := len(text) - len(text[at:].lstrip())) < len(text):
        value, at = decoder.raw_decode(text, at)
        values.append(value)
    return values
