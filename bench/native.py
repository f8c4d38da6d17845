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


def answered(metrics_port: int, method: str | None = "Predict") -> float:
    """Calls of ``method`` (every method: None) the server answered so far
    (``swapserve_requests_total``)."""
    labels = {"method": method} if method else {}
    return value(scrape(metrics_port), "swapserve_requests_total", **labels)


class ServerCost:
    """The server's CPU per request it answered between ``start`` and ``stop`` (warm-up
    requests included on both sides of the division, so a generator's warm-up does not skew
    it)."""

    def __init__(self, pid: int, metrics_port: int) -> None:
        self.pid, self.metrics_port = pid, metrics_port

    def start(self) -> None:
        self.cpu, self.requests = cpu_seconds(self.pid), answered(self.metrics_port)

    def stop(self) -> float:
        """Microseconds of server CPU per request."""
        requests = answered(self.metrics_port) - self.requests
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
            result = s.load(port, "swapserve", CLIENTS)
            server = cost.stop()
            summary = result.summary()
            runs["python"].append({
                "rps": summary["throughput_rps"], "p50_ms": summary["p50_ms"],
                "p99_ms": summary["p99_ms"], "errors": summary["errors"],
                "client_cpu_us": 1e6 * result.client_cpu_seconds / max(1, result.requests),
                "server_cpu_us": server,
            })  # fmt: skip
            cost.start()
            done = subprocess.run(
                [str(go), "-load", "-target", f"127.0.0.1:{port}", "-model", "seed",
                 "-connections", str(CLIENTS), "-duration", f"{s.seconds}s"],
                capture_output=True, text=True, timeout=120, check=True,
            )  # fmt: skip
            server = cost.stop()
            native = json.loads(done.stdout)
            runs["go"].append({
                "rps": native["rps"], "p50_ms": native["p50_ms"], "p99_ms": native["p99_ms"],
                "errors": native["failures"],
                "client_cpu_us": native["client_cpu_us_per_request"],
                "server_cpu_us": server,
            })  # fmt: skip
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
