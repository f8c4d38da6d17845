"""What JSON request bodies cost the server in memory: RSS growth per MB of JSON body in flight
(peak) and held afterwards, with the body memory budget (``--http-body-memory-bytes``) on.

Many clients at once send TF Serving ``:predict`` bodies of rows of one float (the costliest
JSON per byte: ~13x in Python objects); the server's RSS is sampled every 20 ms. With
``--before REF`` the same load runs, alternately, against the server as it was at git ``REF``
(a worktree), so both figures come from one run on one machine.

    .venv/bin/python bench/json_memory.py [--clients 16] [--mb 8] [--rounds 3] [--before REF]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from common import REST_PORTS, rss_mib, start_server, stop_server, wait_serving

REPO = Path(__file__).resolve().parents[1]
HALF_PLUS_TWO = REPO.parent / "shared" / "testdata" / "tfserving" / "saved_model_half_plus_two_cpu"


def body(mb: float) -> bytes:
    """A ``:predict`` body of about ``mb`` MB: rows of one float."""
    rows = int(mb * 1e6 / 12)
    return b'{"instances": [' + b"[0.123456], " * (rows - 1) + b"[0.123456]]}"


def one_round(port: int, pid: int, clients: int, payload: bytes) -> dict[str, Any]:
    statuses: list[int] = []
    peak = [rss_mib(pid)]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], rss_mib(pid))
            time.sleep(0.02)

    def send() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
        try:
            conn.request("POST", "/v1/models/m:predict", body=payload)
            response = conn.getresponse()
            response.read()
            statuses.append(response.status)
        except OSError:
            statuses.append(0)
        finally:
            conn.close()

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    senders = [threading.Thread(target=send) for _ in range(clients)]
    for t in senders:
        t.start()
    for t in senders:
        t.join()
    done.set()
    sampler.join()
    return {"peak_mib": peak[0], "statuses": statuses}


def measure(server_dir: Path, clients: int, mb: float, rounds: int, root: Path) -> dict[str, Any]:
    env_path = str(server_dir / "server")
    os.environ["PYTHONPATH"] = env_path  # the server package to measure (start_server inherits)
    # Bodies are allowed past the defaults on both sides (before: one 256 MB limit for all).
    limits = ["--max-message-bytes", str(1 << 30)]
    if "max_http_body_bytes" in (server_dir / "server/swapserve/config/settings.py").read_text():
        limits += ["--max-http-body-bytes", str(64 << 20)]
    proc, port = start_server(root, "--rest-port", "0", *limits, model="m")
    rest = REST_PORTS[proc.pid]
    payload = body(mb)
    try:
        wait_serving(f"127.0.0.1:{port}", model="m")
        one_round(rest, proc.pid, 1, body(0.1))  # warm
        base = rss_mib(proc.pid)
        runs = [one_round(rest, proc.pid, clients, payload) for _ in range(rounds)]
        time.sleep(3)
        held = rss_mib(proc.pid)
    finally:
        stop_server(proc)
        os.environ.pop("PYTHONPATH", None)
    in_flight = clients * len(payload) / 1e6
    peak = max(r["peak_mib"] for r in runs)
    codes: dict[str, int] = {}
    for r in runs:
        for status in r["statuses"]:
            codes[str(status)] = codes.get(str(status), 0) + 1
    return {
        "body_mb": round(len(payload) / 1e6, 2),
        "clients": clients,
        "base_rss_mib": round(base),
        "peak_rss_mib": round(peak),
        "held_rss_mib": round(held),
        "peak_growth_per_mb_in_flight": round((peak - base) / in_flight, 1),
        "held_growth_per_mb_sent": round((held - base) / (in_flight * rounds), 2),
        "statuses": codes,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--mb", type=float, default=8.0, help="MB per body")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--before", help="a git ref to measure too (alternating)")
    args = parser.parse_args()
    report: dict[str, Any] = {"command": " ".join(["bench/json_memory.py", *sys.argv[1:]])}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "m"
        subprocess.run(["cp", "-r", str(HALF_PLUS_TWO), str(root)], check=True)
        trees = {"after": REPO}
        if args.before:
            worktree = Path(tmp) / "before"
            subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(worktree),
                            args.before], check=True, capture_output=True)  # fmt: skip
            trees = {"before": worktree, "after": REPO}
        try:
            for name, tree in trees.items():
                report[name] = measure(tree, args.clients, args.mb, args.rounds, root)
        finally:
            if args.before:
                subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force",
                                str(Path(tmp) / "before")], check=False)  # fmt: skip
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
