"""Predict latency of the seed model before and during hot swaps, over real gRPC.

Starts ``swapserve`` as its own process on 127.0.0.1 (port chosen by the OS), drives it with
closed-loop clients for a steady phase, then for an equal phase in which a new version is
exported every ``--swap-every`` seconds (copied to ``temp-N`` and renamed, as ``export_model``
does). Writes ``docs/benchmarks/swap_latency.{json,md}``.

    .venv/bin/python bench/swap_latency.py            # or: make bench
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
from common import REPO, export_versions, publish, start_server, wait_serving

from swapserve_client import Client

OUT = REPO / "docs" / "benchmarks"
log = logging.getLogger("bench")


def drive(target: str, seconds: float, clients: int) -> list[tuple[float, float, int, bool]]:
    """Closed loop: each client sends the next request when the last returns.
    Returns (start time, latency s, version, ok) per request."""
    samples: list[tuple[float, float, int, bool]] = []
    lock = threading.Lock()
    x = {"number": np.array([[100.0]], np.float32)}
    stop_at = time.perf_counter() + seconds

    def loop() -> None:
        mine = []
        with Client(target, timeout=10) as client:
            while (t0 := time.perf_counter()) < stop_at:
                try:
                    version = client.predict_full("seed", x).version
                    ok = True
                except Exception:
                    version, ok = 0, False
                mine.append((t0, time.perf_counter() - t0, version, ok))
        with lock:
            samples.extend(mine)

    threads = [threading.Thread(target=loop) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return samples


def summarize(samples: list[tuple[float, float, int, bool]], seconds: float) -> dict[str, Any]:
    lat = np.array([s[1] for s in samples if s[3]]) * 1000
    return {
        "requests": len(samples),
        "errors": sum(not s[3] for s in samples),
        "throughput_rps": round(len(samples) / seconds, 1),
        "p50_ms": round(float(np.percentile(lat, 50)), 3),
        "p90_ms": round(float(np.percentile(lat, 90)), 3),
        "p99_ms": round(float(np.percentile(lat, 99)), 3),
        "p999_ms": round(float(np.percentile(lat, 99.9)), 3),
        "max_ms": round(float(lat.max()), 3),
        "versions_seen": sorted({s[2] for s in samples if s[3]}),
    }


def in_process(path: Path, calls: int = 3000) -> dict[str, Any]:
    """The floor: the same request through ``LoadedVersion.run`` with no gRPC in between."""
    from swapserve.model.loaded import LoadedVersion
    from swapserve.settings import SessionSettings

    loaded = LoadedVersion.load(1, path, SessionSettings())
    x = {"number": np.array([[100.0]], np.float32)}
    try:
        for _ in range(200):
            loaded.run("", x)
        lat = []
        for _ in range(calls):
            t0 = time.perf_counter()
            loaded.run("", x)
            lat.append(time.perf_counter() - t0)
    finally:
        loaded.close()
    ms = np.array(lat) * 1000
    return {
        "calls": calls,
        "p50_ms": round(float(np.percentile(ms, 50)), 3),
        "p99_ms": round(float(np.percentile(ms, 99)), 3),
    }


def run_scenario(
    target: str,
    root: Path,
    sources: list[Path],
    first_version: int,
    *,
    clients: int,
    seconds: float,
    swap_every: float,
) -> tuple[dict[str, Any], int]:
    """One steady phase then one swapping phase; returns the result and the next version."""
    drive(target, 2.0, clients)  # warm-up, discarded
    steady = drive(target, seconds, clients)
    stop = threading.Event()
    next_version = [first_version]

    def exporter() -> None:
        while not stop.wait(swap_every):
            publish(sources[next_version[0] % 2], root, next_version[0])
            next_version[0] += 1

    t = threading.Thread(target=exporter)
    t.start()
    during = drive(target, seconds, clients)
    stop.set()
    t.join()
    st, sw = summarize(steady, seconds), summarize(during, seconds)
    result = {
        "clients": clients,
        "steady": st,
        "during_swaps": sw,
        "swaps": next_version[0] - first_version,
        "p99_ratio": round(sw["p99_ms"] / st["p99_ms"], 2),
    }
    return result, next_version[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each phase")
    parser.add_argument(
        "--clients", type=int, nargs="+", default=[1, 4], help="concurrent closed-loop clients"
    )
    parser.add_argument("--swap-every", type=float, default=1.0, help="seconds between exports")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    scenarios = []
    with tempfile.TemporaryDirectory() as tmp:
        root, staging = Path(tmp) / "root", Path(tmp) / "staging"
        root.mkdir()
        sources = export_versions(root, staging)
        floor = in_process(sources[0])
        log.info("in-process: %s", json.dumps(floor))
        proc, port = start_server(root, "--poll-seconds", "0.25")
        target = f"127.0.0.1:{port}"
        try:
            wait_serving(target)
            version = 2
            for clients in args.clients:
                result, version = run_scenario(
                    target,
                    root,
                    sources,
                    version,
                    clients=clients,
                    seconds=args.seconds,
                    swap_every=args.swap_every,
                )
                scenarios.append(result)
                log.info("%s", json.dumps(result))
        finally:
            proc.terminate()
            proc.wait(30)

    report = {
        "benchmark": "swap_latency",
        "model": "seed (examples/seed/train.py)",
        "phase_seconds": args.seconds,
        "swap_every_seconds": args.swap_every,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "in_process": floor,
        "scenarios": scenarios,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "swap_latency.json").write_text(json.dumps(report, indent=2) + "\n")
    rows = [
        "| clients | phase | requests | errors | req/s | p50 ms | p90 ms | p99 ms | p99.9 ms "
        "| max ms |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for sc in scenarios:
        for name, s in (("steady", sc["steady"]), (f"{sc['swaps']} swaps", sc["during_swaps"])):
            rows.append(
                f"| {sc['clients']} | {name} | {s['requests']} | {s['errors']} "
                f"| {s['throughput_rps']} | {s['p50_ms']} | {s['p90_ms']} | {s['p99_ms']} "
                f"| {s['p999_ms']} | {s['max_ms']} |"
            )
    ratios = ", ".join(f"{sc['clients']} client(s): **{sc['p99_ratio']}**" for sc in scenarios)
    md = "\n".join(
        [
            "# Predict latency before and during hot swaps",
            "",
            f"Seed model served by a `swapserve` process; closed-loop Python gRPC clients on the "
            f"same {os.cpu_count()}-core machine; {args.seconds:g} s steady, then "
            f"{args.seconds:g} s in which a new version is exported every {args.swap_every:g} s. "
            "Regenerate with `make bench` (`bench/swap_latency.py`).",
            "",
            *rows,
            "",
            f"p99 during swaps / steady p99: {ratios}",
            "",
            f"In-process floor (`LoadedVersion.run`, same request, no gRPC): p50 "
            f"{floor['p50_ms']} ms, p99 {floor['p99_ms']} ms over {floor['calls']} calls.",
            "",
        ]
    )
    (args.out / "swap_latency.md").write_text(md)
    log.info("%s", md)


if __name__ == "__main__":
    main()
