"""Idle and slow HTTP connections past the fd limit: the figures behind docs/operations.md's fd
budget. A server with a 1,024-descriptor limit gets ``--idle`` silent and ``--slow`` slowloris
sockets on its HTTP port while clients call gRPC and HTTP; prints the server's peak descriptor
count, the answers and failures during the flood, and how long until every socket was closed.

    .venv/bin/python bench/fd_flood.py [--idle 1300] [--slow 100] [--header-timeout 2]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import resource
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from common import REST_PORTS, stop_server, wait_serving

REPO = Path(__file__).resolve().parents[1]
HALF_PLUS_TWO = REPO.parent / "shared" / "testdata" / "tfserving" / "saved_model_half_plus_two_cpu"


def _limit() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (1024, 1024))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--idle", type=int, default=1300)
    parser.add_argument("--slow", type=int, default=100)
    parser.add_argument("--header-timeout", type=float, default=2.0)
    parser.add_argument("--idle-timeout", type=float, default=3.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "m"
        subprocess.run(["cp", "-r", str(HALF_PLUS_TWO), str(root)], check=True)
        proc = subprocess.Popen(
            [str(Path(sys.executable).parent / "swapserve"), "--model-name", "m",
             "--export-root", str(root), "--host", "127.0.0.1", "--port", "0", "--rest-port", "0",
             "--http-header-timeout-seconds", str(args.header_timeout),
             "--http-idle-timeout-seconds", str(args.idle_timeout), "--drain-seconds", "0"],
            stderr=subprocess.PIPE, text=True, preexec_fn=_limit,  # noqa: PLW1509
        )  # fmt: skip
        assert proc.stderr is not None
        port = 0
        for line in proc.stderr:
            if "HTTP on" in line:
                REST_PORTS[proc.pid] = int(line.rsplit(":", 1)[1])
            if "listening on" in line:
                port = int(line.rsplit(":", 1)[1])
                break
        threading.Thread(target=lambda: [None for _ in proc.stderr or []], daemon=True).start()
        rest = REST_PORTS[proc.pid]
        try:
            wait_serving(f"127.0.0.1:{port}", model="m")
            report = flood(proc.pid, port, rest, args)
        finally:
            stop_server(proc)
    print(json.dumps(report, indent=2))
    return 0


def flood(pid: int, port: int, rest: int, args: argparse.Namespace) -> dict[str, object]:
    import numpy as np

    from swapserve_client import Client

    fds = lambda: len(os.listdir(f"/proc/{pid}/fd"))  # noqa: E731
    peak, stop = [fds()], threading.Event()
    counts = {"grpc_ok": 0, "http_ok": 0, "failed": 0}

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], fds())
            time.sleep(0.02)

    def grpc_load() -> None:
        with Client(f"127.0.0.1:{port}", timeout=30) as client:
            while not stop.is_set():
                try:
                    client.predict("m", {"x": np.ones([1, 1], np.float32)})
                    counts["grpc_ok"] += 1
                except Exception:  # counted, not raised: the figure is the count
                    counts["failed"] += 1

    def http_load() -> None:
        while not stop.is_set():
            conn = http.client.HTTPConnection("127.0.0.1", rest, timeout=30)
            try:
                conn.request("POST", "/v1/models/m:predict", body=b'{"instances": [1.0]}')
                ok = conn.getresponse().status == 200
                counts["http_ok" if ok else "failed"] += 1
            except OSError:
                counts["failed"] += 1
            finally:
                conn.close()

    threads = [threading.Thread(target=f, daemon=True) for f in (sample, grpc_load, http_load)]
    for t in threads:
        t.start()
    time.sleep(1)
    base = fds()
    socks = [socket.create_connection(("127.0.0.1", rest)) for _ in range(args.idle)]
    for _ in range(args.slow):
        sock = socket.create_connection(("127.0.0.1", rest))
        sock.sendall(b"POST /v1/models/m:predict HTTP/1.1\r\nHost: x\r\n")
        socks.append(sock)
    opened = time.monotonic()
    during = dict(counts)
    closed_at = None
    while time.monotonic() - opened < 30:
        if fds() <= base + 5:
            closed_at = time.monotonic() - opened
            break
        time.sleep(0.1)
    after = {k: counts[k] - during[k] for k in counts}
    stop.set()
    for sock in socks:
        sock.close()
    return {
        "fd_limit": 1024,
        "idle_sockets": args.idle,
        "slow_sockets": args.slow,
        "server_fds_before": base,
        "server_fds_peak": peak[0],
        "seconds_until_all_closed": round(closed_at, 1) if closed_at is not None else None,
        "answers_while_open": after,
    }


if __name__ == "__main__":
    sys.exit(main())
