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

from swapserve_client import Client, SwapserveError

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


REST_PORTS: dict[int, int] = {}


def free_port() -> int:
    """A TCP port free now on 127.0.0.1 (for servers that log no port, as ``--metrics-port``
    with a fixed number)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


"""The HTTP port of each server started with --rest-port, by process id."""


def start_server(
    root: Path,
    *args: str,
    model: str = "seed",
    command: tuple[str, ...] = (),
    cpus: set[int] | None = None,
) -> tuple[subprocess.Popen[str], int]:
    """Starts ``swapserve`` (or ``command``, taking its flags) for one model on 127.0.0.1 and
    a port the OS picks; all its threads on ``cpus`` when given."""
    proc = subprocess.Popen(
        [
            *pinned(cpus), *(command or (str(Path(sys.executable).parent / "swapserve"),)),
            "--model-name", model, "--export-root", str(root),
            "--host", "127.0.0.1", "--port", "0", "--log-level", "INFO", "--drain-seconds", "0",
            *args,
        ],
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )  # fmt: skip
    assert proc.stderr is not None
    stderr = proc.stderr
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        line = stderr.readline()
        if m := re.search(r"HTTP on 127\.0\.0\.1:(\d+)", line):
            REST_PORTS[proc.pid] = int(m.group(1))
        if m := re.search(r"listening on 127\.0\.0\.1:(\d+)", line):
            # Keep draining the log so the server never blocks on a full pipe.
            threading.Thread(target=lambda: [None for _ in stderr], daemon=True).start()
            return proc, int(m.group(1))
        if not line and proc.poll() is not None:
            break
    proc.kill()
    raise RuntimeError("server did not start")


def pinned(cpus: set[int] | None) -> tuple[str, ...]:
    """A command prefix confining a process (and every thread it starts) to ``cpus``; empty
    when no CPUs are given or ``taskset`` is missing."""
    if not cpus or not shutil.which("taskset"):
        return ()
    return ("taskset", "-c", ",".join(map(str, sorted(cpus))))


def stop_server(proc: subprocess.Popen[str]) -> None:
    """SIGTERM, then wait."""
    proc.terminate()
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def rss_mib(pid: int) -> float:
    """Resident memory of a process, MiB (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def wait_serving(target: str, model: str = "seed", timeout: float = 60.0) -> None:
    """Waits until the server serves a version of ``model``."""
    deadline = time.monotonic() + timeout
    with Client(target, timeout=5) as client:
        while True:
            try:
                if [s for s in client.status(model) if s.serving]:
                    return
            except SwapserveError:
                pass  # workers still starting: the port refuses connections until they listen
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


def cpu_seconds(pid: int) -> float:
    """User + system CPU a process has used, from /proc (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def export_dense_stack(
    root: Path, version: int, sizes: list[int], stddev: float, seed: int
) -> Path:
    """A stack of ReLU dense layers of these widths (input ``x``: [None, sizes[0]], output
    ``y``), random weights from ``seed``, exported as ``version`` under ``root``."""
    import itertools

    import tensorflow as tf

    from swapserve.export import export_model

    rng = np.random.default_rng(seed)

    class Dense(tf.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = [
                tf.Variable(rng.normal(0, stddev, (a, b)).astype(np.float32))
                for a, b in itertools.pairwise(sizes)
            ]

        @tf.function(input_signature=[tf.TensorSpec([None, sizes[0]], tf.float32, name="x")])
        def serve(self, x: tf.Tensor) -> dict[str, tf.Tensor]:
            for w in self.w:
                x = tf.nn.relu(tf.matmul(x, w))
            return {"y": x}

    module = Dense()
    return export_model(module, root, signatures={"serving_default": module.serve}, version=version)
