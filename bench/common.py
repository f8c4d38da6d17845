"""Shared pieces of the benchmarks: the seed model's versions and a server process."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

from swapserve_client import Client

REPO = Path(__file__).resolve().parents[1]


def export_versions(root: Path, staging: Path) -> list[Path]:
    """Trains the seed model on y = 2x and y = 3x once; new versions are copies of these."""
    sources = []
    for slope in (2, 3):
        subprocess.run(
            [
                sys.executable,
                str(REPO / "examples/seed/train.py"),
                "--export-root",
                str(staging),
                "--slope",
                str(slope),
                "--steps",
                "300",
            ],
            check=True,
            capture_output=True,
        )
    sources = sorted(staging.iterdir(), key=lambda p: int(p.name))
    publish(sources[0], root, 1)
    return sources


def publish(src: Path, root: Path, version: int) -> None:
    tmp = root / f"temp-{version}"
    shutil.copytree(src, tmp)
    os.rename(tmp, root / str(version))


def start_server(root: Path, poll: float) -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "swapserve"),
            "--model-name",
            "seed",
            "--export-root",
            str(root),
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--poll-seconds",
            str(poll),
            "--log-level",
            "INFO",
        ],
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    assert proc.stderr is not None
    stderr = proc.stderr
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        line = stderr.readline()
        if m := re.search(r"listening on 127\.0\.0\.1:(\d+)", line):
            # Keep draining the log so the server never blocks on a full pipe.
            threading.Thread(target=lambda: [None for _ in stderr], daemon=True).start()
            return proc, int(m.group(1))
        if not line and proc.poll() is not None:
            break
    proc.kill()
    raise RuntimeError("server did not start")


def wait_serving(target: str, model: str = "seed", timeout: float = 60.0) -> None:
    """Waits until the server serves a version of ``model``."""
    deadline = time.monotonic() + timeout
    with Client(target) as client:
        while not [s for s in client.status(model) if s.serving]:
            if time.monotonic() > deadline:
                raise RuntimeError("no version served")
            time.sleep(0.1)


def percentiles(seconds: list[float]) -> dict[str, float]:
    """p50/p90/p99/p99.9/max in milliseconds."""
    ms = np.array(seconds) * 1000
    return {
        "p50_ms": round(float(np.percentile(ms, 50)), 3),
        "p90_ms": round(float(np.percentile(ms, 90)), 3),
        "p99_ms": round(float(np.percentile(ms, 99)), 3),
        "p999_ms": round(float(np.percentile(ms, 99.9)), 3),
        "max_ms": round(float(ms.max()), 3),
    }
