"""``make soak``: many hot swaps under load on every protocol, then SIGTERM under load.

Not part of CI (minutes long). Checks, and prints as JSON:
  - 100 swaps while 40 clients (split over the swapserve, TF Serving and V2 gRPC protocols and
    TF Serving's REST API) predict, and 200 idle plus 50 slow (one header byte a second) HTTP
    connections are held open and reopened as the server closes them: zero failed requests;
    RSS after the last swap within 10% of RSS after the 10th; no metric series of a released
    version once the swaps are done (``--swaps 1000`` for the long run);
  - SIGTERM while 16 clients predict and keep predicting: the drain serves on, then requests are
    refused UNAVAILABLE (never CANCELLED), the process exits 0 well before the grace period.
Exits 1 if a check fails.

    .venv/bin/python bench/soak.py [--swaps 100]
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import loadgen
import numpy as np
from common import (
    REST_PORTS,
    export_versions,
    free_port,
    publish,
    rss_mib,
    start_server,
    stop_server,
    wait_serving,
)

log = logging.getLogger("soak")
X = {"number": np.array([[100.0]], np.float32)}
PROTOCOLS = ("swapserve", "tfserving", "v2", "tfserving_rest")
METRICS_PORT = free_port()


def _load(port: int, protocol: str, clients: int, seconds: float) -> loadgen.Load:
    return loadgen.Load(
        f"127.0.0.1:{port}", protocol, loadgen.build_request(protocol, "seed", X),
        clients=clients, processes=1, duration=seconds, warmup=0.5,
    )  # fmt: skip


class Hostile:
    """Idle and slow HTTP connections, reopened as the server closes them, until stopped."""

    def __init__(self, port: int, idle: int = 200, slow: int = 50) -> None:
        self._port, self._idle, self._slow = port, idle, slow
        self._stop = threading.Event()
        self.reopened = 0
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Hostile:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        import socket

        conns: list[tuple[socket.socket, bool]] = []
        while not self._stop.is_set():
            live = []
            for sock, slow in conns:
                try:
                    if slow:
                        sock.send(b"X")  # one more header byte
                    sock.setblocking(False)
                    closed = sock.recv(1, socket.MSG_PEEK) == b""
                except BlockingIOError:
                    closed = False
                except OSError:
                    closed = True
                if closed:
                    sock.close()
                else:
                    live.append((sock, slow))
            while sum(1 for _, s in live if not s) < self._idle:
                live.append((socket.create_connection(("127.0.0.1", self._port)), False))
                self.reopened += 1
            while sum(1 for _, s in live if s) < self._slow:
                sock = socket.create_connection(("127.0.0.1", self._port))
                sock.send(b"POST /v1/models/seed:predict HTTP/1.1\r\nX-Slow: ")
                live.append((sock, True))
                self.reopened += 1
            conns = live
            self._stop.wait(1.0)
        for sock, _ in conns:
            sock.close()


def released_series(metrics_port: int, loaded: set[str]) -> list[str]:
    """The metric series that name a version no longer loaded."""
    import re
    import urllib.request

    text = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).read()
    return [
        line
        for line in text.decode().splitlines()
        if (m := re.search(r'version="(\d+)"', line)) and m.group(1) not in loaded
    ]


def swaps_under_load(root: Path, sources: list[Path], swaps: int, every: float) -> dict[str, Any]:
    proc, port = start_server(
        root, "--poll-seconds", "0.1", "--grpc-threads", "48", "--rest-port", "0",
        "--metrics-port", str(METRICS_PORT), "--http-header-timeout-seconds", "5",
        "--http-idle-timeout-seconds", "5",
    )  # fmt: skip
    rest = REST_PORTS[proc.pid]
    try:
        wait_serving(f"127.0.0.1:{port}")
        seconds = swaps * every + 3.0
        results: dict[str, loadgen.Result] = {}
        runners = [
            threading.Thread(target=lambda p=p: results.setdefault(p, loadgen.run(
                _load(rest if p.endswith("_rest") else port, p, 10, seconds))))
            for p in PROTOCOLS
        ]  # fmt: skip
        hostile = Hostile(rest).__enter__()
        for t in runners:
            t.start()
        time.sleep(2.5 + 1.0)  # process start-up + warm-up
        rss: dict[int, float] = {}
        for i in range(1, swaps + 1):
            publish(sources[i % 2], root, i + 1)
            time.sleep(every)
            if i in (10, swaps):
                time.sleep(0.5)
                rss[i] = round(rss_mib(proc.pid), 1)
        for t in runners:
            t.join()
        hostile.__exit__()
        time.sleep(1.0)  # the last released version drains
        leaked = released_series(METRICS_PORT, {str(swaps + 1)})
    finally:
        stop_server(proc)
    summary = {p: r.summary() for p, r in results.items()}
    failed = sum(s["errors"] for s in summary.values())
    return {
        "swaps": swaps,
        "requests": sum(s["requests"] for s in summary.values()),
        "failed": failed,
        "by_protocol": summary,
        "rss_mib": rss,
        "rss_ratio": round(rss[swaps] / rss[10], 3),
        "hostile_connections_opened": hostile.reopened,
        "released_version_series": len(leaked),
        "ok": failed == 0 and rss[swaps] <= 1.10 * rss[10] and not leaked,
    }


def sigterm_under_load(root: Path, drain: float = 2.0) -> dict[str, Any]:
    proc, port = start_server(
        root, "--poll-seconds", "600", "--grace-seconds", "10", "--drain-seconds", str(drain)
    )
    wait_serving(f"127.0.0.1:{port}")
    result: dict[str, loadgen.Result] = {}
    t = threading.Thread(target=lambda: result.setdefault("r", loadgen.run(
        _load(port, "swapserve", 16, 8.0))))  # fmt: skip
    t.start()
    time.sleep(2.5 + 0.5 + 2.0)  # start-up, warm-up, then 2 s of measured load
    sent_at = 2.0
    signalled = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    code = proc.wait(60)
    exit_seconds = time.monotonic() - signalled
    t.join()  # the load keeps going through the signal and past the exit
    r = result["r"]
    # The drain serves on; then requests are refused UNAVAILABLE (never CANCELLED); none that
    # started before the signal fails.
    failed_before = int(np.sum(r.error_starts < sent_at + drain - 0.05))
    return {
        "exit_code": code,
        "exit_seconds": round(exit_seconds, 2),
        "ok_requests": len(r.latencies),
        "ok_during_drain": int(np.sum((r.starts >= sent_at) & (r.starts < sent_at + drain))),
        "failed_before_drain_ended": failed_before,
        "error_codes": r.errors,
        "ok": code == 0
        and failed_before == 0
        and set(r.errors) <= {"UNAVAILABLE"}
        and exit_seconds < drain + 5,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--swaps", type=int, default=100)
    parser.add_argument("--every", type=float, default=0.4, help="seconds between exports")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    with tempfile.TemporaryDirectory() as tmp:
        root, staging = Path(tmp) / "root", Path(tmp) / "staging"
        root.mkdir()
        sources = export_versions(root, staging)
        report = {
            "swaps_under_load": swaps_under_load(root, sources, args.swaps, args.every),
            "sigterm_under_load": sigterm_under_load(root),
        }
    print(json.dumps(report, indent=2))
    return 0 if all(part["ok"] for part in report.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
