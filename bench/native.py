"""The native load generator scenario of ``make bench`` (issue 33), registered in
``suite.SCENARIOS``.

native_loadgen -- one swapserve on the seed model, saturated by 16 closed-loop callers from
                  the Python generator (bench/loadgen.py: grpc.aio, two processes) and from the
                  Go client (examples/go, ``-load``: 16 goroutines, one connection each), runs
                  alternated over rounds. Per generator: throughput, p50/p99, and CPU per
                  request of the client and of the server (/proc): on 2 cores the generator's
                  own CPU is taken from the server it measures.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import loadgen
from common import REPO, cpu_seconds, free_port, start_server, stop_server, wait_serving

# The e2e tests' Prometheus scrape, imported here and not at the first count: the import takes
# seconds, which a window of server CPU must not hold.
sys.path.insert(0, str(REPO / "tests" / "e2e"))
from helpers import scrape, value

if TYPE_CHECKING:
    from suite import Suite

CLIENTS = 16


def build_go(out: Path) -> Path:
    """The Go client, built as ``make clients-test`` builds it."""
    sys.path.insert(0, str(REPO / "tests" / "clients"))
    import run  # the clients harness

    return Path(run.build_go(out)[0])


def go_load(go: Path, port: int, seconds: float) -> dict[str, float]:
    """The Go generator's closed loop on swapserve v1 (16 goroutines, one connection each): its
    throughput, latency, failures and client CPU per request."""
    done = subprocess.run(
        [str(go), "-load", "-target", f"127.0.0.1:{port}", "-model", "seed",
         "-connections", str(CLIENTS), "-duration", f"{seconds}s"],
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    native = json.loads(done.stdout)
    return {
        "rps": native["rps"], "p50_ms": native["p50_ms"], "p99_ms": native["p99_ms"],
        "errors": native["failures"], "client_cpu_us": native["client_cpu_us_per_request"],
    }  # fmt: skip


def python_row(result: loadgen.Result) -> dict[str, float]:
    """A ``bench/loadgen.py`` run in the same columns as ``go_load``'s."""
    summary = result.summary()
    return {
        "rps": summary["throughput_rps"], "p50_ms": summary["p50_ms"],
        "p99_ms": summary["p99_ms"], "errors": summary["errors"],
        "client_cpu_us": 1e6 * result.client_cpu_seconds / max(1, result.requests),
    }  # fmt: skip


def answered(metrics_port: int, method: str | None = "Predict") -> float:
    """Calls of ``method`` (every method: None) the server answered so far
    (``swapserve_requests_total``)."""
    labels = {"method": method} if method else {}
    return value(scrape(metrics_port), "swapserve_requests_total", **labels)


class ServerCost:
    """The server's CPU per request it answered between ``start`` and ``stop`` (warm-up
    requests included on both sides of the division, so a generator's warm-up does not skew
    it)."""

    def __init__(self, pid: int, metrics_port: int, method: str | None = "Predict") -> None:
        self.pid, self.metrics_port, self.method = pid, metrics_port, method

    def start(self) -> None:
        self.cpu, self.requests = cpu_seconds(self.pid), answered(self.metrics_port, self.method)

    def stop(self) -> float:
        """Microseconds of server CPU per request."""
        requests = answered(self.metrics_port, self.method) - self.requests
        return 1e6 * (cpu_seconds(self.pid) - self.cpu) / max(1.0, requests)


def scenario_native_loadgen(s: Suite) -> dict[str, Any]:
    go = build_go(s.tmp / "go")
    rounds = 2 if s.quick else 4
    metrics_port = free_port()
    proc, port = start_server(s.root("native"), "--metrics-port", str(metrics_port))
    cost = ServerCost(proc.pid, metrics_port)
    runs: dict[str, list[dict[str, float]]] = {"python": [], "go": []}
    try:
        wait_serving(f"127.0.0.1:{port}")
        for _ in range(rounds):
            cost.start()
            row = python_row(s.load(port, "swapserve", CLIENTS))
            runs["python"].append({**row, "server_cpu_us": cost.stop()})
            cost.start()
            row = go_load(go, port, s.seconds)
            runs["go"].append({**row, "server_cpu_us": cost.stop()})
    finally:
        stop_server(proc)
    out: dict[str, Any] = {"clients": CLIENTS, "rounds": rounds}
    for name, rs in runs.items():
        out[name] = {k: round(sum(r[k] for r in rs) / len(rs), 3) for k in rs[0]}
        out[name]["rps_by_round"] = [round(r["rps"], 1) for r in rs]
    py, native = out["python"], out["go"]
    out["ratios_go_over_python"] = {
        k: round(native[k] / py[k], 3)
        for k in ("rps", "p50_ms", "p99_ms", "client_cpu_us", "server_cpu_us")
    }
    return out
