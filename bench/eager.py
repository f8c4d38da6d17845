"""Batching and floor scenarios of ``make bench`` (issue 17), registered in ``suite.SCENARIOS``.

batching_low -- the seed model at 1 and 4 clients: batching off, eager, timeout (500 µs),
                three servers up at once, runs interleaved over rounds.
model_bound  -- a 2048-wide MLP whose own cost dominates the RPC's: in-process call costs at 1
                and 64 rows, then 64 clients unbatched vs eager batching, and the
                single-client round trip (the p99 bound's terms).
floor        -- swapserve vs a minimal gRPC server whose handler decodes the same request,
                makes the same ``LoadedVersion.run`` call and encodes the answer
                (bench/floor_server.py): single-client p50 and server CPU per request from
                /proc, rounds interleaved; then a py-spy profile of swapserve under that load,
                summarised by function.
"""

from __future__ import annotations

import collections
import itertools
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import loadgen
import numpy as np
from common import (
    REPO,
    cpu_seconds,
    export_dense_stack,
    pinned,
    start_server,
    stop_server,
    wait_serving,
)  # fmt: skip

if TYPE_CHECKING:
    from suite import Suite

SEED_X = {"number": np.array([[100.0]], np.float32)}
ABLATED = ("bookkeeping", "call-record")
"""swapserve with layers taken out (bench/ablated_server.py), measured beside the others."""
LAYER_COST = {
    "swapserve": "bookkeeping (metrics, statistics, logs)",
    "bookkeeping": "call record and error mapping",
    "call-record": "data plane (gate, resolution, in-flight, validation)",
}
"""What the difference between a server and the next one without a layer measures."""
WIDTH = 2048


def scenario_batching_low(s: Suite) -> dict[str, Any]:
    """Does batching cost latency when there is nothing to batch? Off vs eager vs TF Serving's
    timeout mode, same machine minutes (interleaved rounds), 1 and 4 clients."""
    arms = {
        "off": [],
        "eager": ["--enable-batching"],
        "timeout": ["--enable-batching", "--batching-mode", "timeout",
                    "--batch-timeout-micros", "500"],
    }  # fmt: skip
    rounds = 1 if s.quick else 4
    servers: dict[str, tuple[subprocess.Popen[str], int]] = {}
    results: dict[tuple[str, int], list[loadgen.Result]] = collections.defaultdict(list)
    try:
        for arm, args in arms.items():
            servers[arm] = start_server(s.root(f"low-{arm}"), *args)
        for _, port in servers.values():
            wait_serving(f"127.0.0.1:{port}")
        for _, clients in itertools.product(range(rounds), (1, 4)):
            for arm, (_, port) in servers.items():
                results[arm, clients].append(
                    s.load(port, "swapserve", clients, duration=s.seconds / 2)
                )
    finally:
        for proc, _ in servers.values():
            stop_server(proc)
    rows = []
    for clients in (1, 4):
        off = loadgen.pooled(results["off", clients]).summary()
        row: dict[str, Any] = {"clients": clients, "off": off}
        for arm in ("eager", "timeout"):
            summary = loadgen.pooled(results[arm, clients]).summary()
            row[arm] = summary
            row[f"{arm}_p50_ratio"] = round(summary["p50_ms"] / off["p50_ms"], 3)
        rows.append(row)
    return {"rounds": rounds, "rows": rows}


def export_wide_mlp(root: Path, version: int) -> Path:
    """Three 2048x2048 dense layers (48 MiB of float32 weights): a model whose one-row call is
    bound by reading its weights, so one 64-row call costs far less than 64 one-row calls."""
    return export_dense_stack(root, version, [WIDTH] * 4, 0.02, version)


def in_process_ms(path: Path, rows: tuple[int, ...], calls: int) -> dict[int, dict[str, float]]:
    """``LoadedVersion.run`` per call at each row count, in this process (p50 and mean)."""
    from swapserve.config.model_settings import SessionSettings
    from swapserve.model.loaded_version import LoadedVersion

    loaded = LoadedVersion.load(1, path, SessionSettings())
    out = {}
    try:
        for n in rows:
            x = {"x": np.ones([n, WIDTH], np.float32)}
            for _ in range(10):
                loaded.run("", x)
            lat = []
            for _ in range(calls):
                t0 = time.perf_counter()
                loaded.run("", x)
                lat.append(time.perf_counter() - t0)
            ms = np.array(lat) * 1000
            out[n] = {
                "p50_ms": round(float(np.median(ms)), 3),
                "mean_ms": round(float(ms.mean()), 3),
            }
    finally:
        loaded.close()
    return out


def scenario_model_bound(s: Suite) -> dict[str, Any]:
    """Where batching pays: the wide MLP at 64 clients, unbatched vs eager batching."""
    root = s.tmp / "wide"
    path = export_wide_mlp(root, 1)
    clients = 8 if s.quick else 64
    max_batch = clients
    calls = in_process_ms(path, (1, max_batch), 10 if s.quick else 40)
    one, full = calls[1]["p50_ms"], calls[max_batch]["p50_ms"]
    out: dict[str, Any] = {
        "clients": clients,
        "weights_mib": round(
            sum(f.stat().st_size for f in (path / "variables").iterdir()) / 2**20, 1
        ),
        "in_process": {str(k): v for k, v in calls.items()},
        "batch_economy": round(max_batch * one / full, 1),  # 64 one-row calls / one 64-row call
    }
    x1 = {"x": np.random.default_rng(0).normal(size=(1, WIDTH)).astype(np.float32)}
    # One batch thread: each run already uses both cores (TensorFlow's intra-op threads) and
    # reads all the weights, so two concurrent runs only split the memory bandwidth and make
    # smaller batches; the second eager arm shows that with the default two.
    batching = ["--enable-batching", "--max-batch-size", str(max_batch)]
    threads = ["--grpc-threads", str(clients + 16)]
    arms = {
        "off": threads,
        "eager": [*batching, "--num-batch-threads", "1", *threads],
        "eager_2_threads": [*batching, *threads],
    }
    servers: dict[str, tuple[subprocess.Popen[str], int]] = {}
    rounds = 1 if s.quick else 3
    results: dict[str, list[loadgen.Result]] = collections.defaultdict(list)
    try:
        for arm, args in arms.items():
            servers[arm] = start_server(root, *args, model="wide")
        for _, port in servers.values():
            wait_serving(f"127.0.0.1:{port}", model="wide")
        single = [s.load(servers["off"][1], "swapserve", 1, model="wide", x=x1)]
        for _, port in servers.values():  # every arm warmed before the rounds
            s.load(port, "swapserve", clients, model="wide", x=x1, duration=s.warmup)
        for _ in range(rounds):
            for arm, (_, port) in servers.items():
                results[arm].append(
                    s.load(port, "swapserve", clients, model="wide", x=x1, warmup=0.0,
                           duration=s.seconds * 2 / rounds)
                )  # fmt: skip
    finally:
        for proc, _ in servers.values():
            stop_server(proc)
    off = loadgen.pooled(results["off"]).summary()
    eager = loadgen.pooled(results["eager"]).summary()
    rtt = loadgen.pooled(single).summary()["p50_ms"]
    out.update(off=off, eager=eager, single_client_p50_ms=rtt)
    out["eager_2_threads"] = loadgen.pooled(results["eager_2_threads"]).summary()
    out["throughput_ratio"] = round(eager["throughput_rps"] / off["throughput_rps"], 2)
    # Eager batches never wait for company: the wait bound is 0, not batch_timeout_micros.
    out["p99_bound_ms"] = round(2 * (0.0 + full + rtt), 2)
    out["p99_within_bound"] = eager["p99_ms"] <= out["p99_bound_ms"]
    # Closed-loop clients see a mean latency of clients / throughput (Little's law) and
    # p99 >= mean: the bound needs at least this throughput, to compare with the best measured.
    out["rps_needed_for_bound"] = round(clients / (out["p99_bound_ms"] / 1000), 1)
    out["cores"] = os.cpu_count()
    # The goal that can be met on any core count: the tail within twice the closed-loop mean
    # (Little's law: clients / throughput), i.e. no request waits more than ~2 batch cycles.
    out["cycle_ms"] = round(1000 * clients / eager["throughput_rps"], 2)
    out["p99_within_2_cycles"] = eager["p99_ms"] <= 2 * out["cycle_ms"]
    return out


def _start_floor(export: Path, cpus: set[int] | None) -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen(
        [*pinned(cpus), sys.executable, str(REPO / "bench" / "floor_server.py"), str(export)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )  # fmt: skip
    assert proc.stdout is not None
    return proc, int(proc.stdout.readline())


def _arm(lat: list[np.ndarray]) -> dict[str, Any]:
    ms = np.concatenate(lat) * 1000
    return {
        "requests": int(ms.size),
        "p50_ms": round(float(np.percentile(ms, 50)), 4),
        "p90_ms": round(float(np.percentile(ms, 90)), 4),
        "p99_ms": round(float(np.percentile(ms, 99)), 4),
    }


def scenario_floor(s: Suite) -> dict[str, Any]:
    """swapserve vs the minimal server doing the same work, one client: latency and CPU."""
    # One client alternates request by request over two processes of each server, so all four
    # are measured in the same milliseconds (back-to-back runs of identical processes differed by
    # up to 30% here as the VM's speed drifts); the two processes of each kind measure the
    # method's own noise. The servers share CPU 0 and the client runs on the other CPUs, so the
    # client's work never lands on a server's core.
    cores = sorted(os.sched_getaffinity(0))
    server_cpus, client_cpus = ({cores[0]}, set(cores[1:])) if len(cores) > 1 else (None, None)
    names = ["swapserve-a", "minimal-a", "swapserve-b", "minimal-b", *ABLATED]
    servers: dict[str, tuple[subprocess.Popen[str], int]] = {}
    try:
        for name in names:
            if name.startswith("minimal"):
                servers[name] = _start_floor(s.sources[0], server_cpus)
                continue
            ablated = (sys.executable, str(REPO / "bench" / "ablated_server.py"), name)
            servers[name] = start_server(
                s.root(f"floor-{name}"),
                cpus=server_cpus,
                command=ablated if name in ABLATED else (),
            )
            wait_serving(f"127.0.0.1:{servers[name][1]}")
        cpu_before: dict[str, float] = {}

        def measuring() -> None:
            cpu_before.update({n: cpu_seconds(p.pid) for n, (p, _) in servers.items()})

        run = loadgen.alternate(
            [f"127.0.0.1:{servers[n][1]}" for n in names],
            "swapserve",
            loadgen.build_request("swapserve", "seed", SEED_X),
            duration=4.0 if s.quick else 60.0,
            warmup=1.0 if s.quick else 5.0,
            cpus=client_cpus,
            on_measuring=measuring,
        )
        cpu_s = {n: cpu_seconds(p.pid) - cpu_before[n] for n, (p, _) in servers.items()}
        proc, port = servers["swapserve-a"]
        profile = py_spy_profile(proc.pid, port, s)
    finally:
        for name, (proc, _) in servers.items():
            if name.startswith("minimal"):
                proc.kill()
                proc.wait()
            else:
                stop_server(proc)
    lat = dict(zip(names, run.latencies.values(), strict=True))
    blocks = dict(zip(names, run.block_medians.values(), strict=True))
    arms = {k: [n for n in names if n.startswith(k)] for k in ("swapserve", "minimal")}
    summary = {k: _arm([lat[n] for n in ns]) for k, ns in arms.items()}
    cpu_us = {
        k: round(1e6 * sum(cpu_s[n] for n in ns) / max(1, sum(lat[n].size for n in ns)), 1)
        for k, ns in arms.items()
    }

    def p50(name: str) -> float:
        return float(np.median(lat[name]))

    def cpu_per_request(name: str) -> float:
        return cpu_s[name] / max(1, lat[name].size)

    block_ratio = (blocks["swapserve-a"] + blocks["swapserve-b"]) / (
        blocks["minimal-a"] + blocks["minimal-b"]
    )

    # What each layer costs: neighbours in full > no bookkeeping > data plane only > minimal.
    layers = {"swapserve": summary["swapserve"]["p50_ms"]}
    layers |= {n: round(1000 * p50(n), 4) for n in ABLATED}
    layers["minimal"] = summary["minimal"]["p50_ms"]
    cpu_layers = {"swapserve": cpu_us["swapserve"]}
    cpu_layers |= {n: round(1e6 * cpu_per_request(n), 1) for n in ABLATED}
    cpu_layers["minimal"] = cpu_us["minimal"]
    steps = list(zip(layers, list(layers)[1:], strict=False))
    return {
        "method": "one client alternating request by request over 2 processes of each server"
        + " and one of each ablated swapserve"
        + (f"; servers on CPU {cores[0]}, client on the others" if server_cpus else ""),
        "seconds": round(run.seconds, 1),
        "errors": run.errors,
        **summary,
        "cpu_us_per_request": cpu_us,
        "p50_ratio": round(summary["swapserve"]["p50_ms"] / summary["minimal"]["p50_ms"], 3),
        "cpu_ratio": round(cpu_us["swapserve"] / cpu_us["minimal"], 3),
        "block_p50_ratio": {
            "blocks": int(block_ratio.size),
            "min": round(float(block_ratio.min()), 3),
            "median": round(float(np.median(block_ratio)), 3),
            "max": round(float(block_ratio.max()), 3),
        },
        # Identical processes side by side: how far the method itself can be off.
        "same_server_ratios": {
            kind: {
                "p50": round(p50(f"{kind}-a") / p50(f"{kind}-b"), 3),
                "cpu": round(cpu_per_request(f"{kind}-a") / cpu_per_request(f"{kind}-b"), 3),
            }
            for kind in ("swapserve", "minimal")
        },
        "layers": {
            "p50_ms": layers,
            "cpu_us": cpu_layers,
            "cost": {
                LAYER_COST[a]: {
                    "p50_us": round(1000 * (layers[a] - layers[b]), 1),
                    "cpu_us": round(cpu_layers[a] - cpu_layers[b], 1),
                }
                for a, b in steps
            },
        },
        "profile": profile,
    }


def py_spy_profile(pid: int, port: int, s: Suite) -> dict[str, Any]:
    """py-spy samples of swapserve under one-client load: the share of samples (of the threads
    doing work) whose stack passes through each swapserve module, and the top leaf functions."""
    py_spy = Path(sys.executable).parent / "py-spy"
    if not py_spy.exists():
        return {"skipped": "py-spy is not installed"}
    seconds = 2 if s.quick else 8
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw.txt"
        spy = subprocess.Popen(
            [str(py_spy), "record", "--pid", str(pid), "--duration", str(seconds), "--rate", "500",
             "--format", "raw", "--output", str(raw), "--nonblocking"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        s.load(port, "swapserve", 1, duration=seconds + 1, warmup=0.0)
        _, err = spy.communicate(timeout=seconds + 60)
        if spy.returncode != 0 or not raw.exists():
            return {"failed": err.strip().splitlines()[-1:]}
        return summarise_stacks(raw.read_text())


_IDLE = (
    "wait (threading.py", "_wait_once", "_worker (thread.py:81)", "_serve (_server.py:1314)",
    "ElasticPool._work (rpc_pool.py", "select (selectors.py", "serve_forever (socketserver.py",
)  # fmt: skip
"""Leaf frames of a waiting thread: a condition, a pool worker's queue or its parking gate,
gRPC's completion queue poll (it releases the GIL in C), a selector."""


def _short(frame: str) -> str:
    """``function (/path/to/file.py:12)`` -> ``function (file.py:12)``."""
    return frame.split(" (", maxsplit=1)[0] + " (" + frame.rsplit("/", 1)[-1]


def summarise_stacks(text: str) -> dict[str, Any]:
    """py-spy's raw format (``frame;frame;... count``, outermost first) -> shares."""
    total = 0
    modules: collections.Counter[str] = collections.Counter()
    leaves: collections.Counter[str] = collections.Counter()
    for line in text.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = stack.split(";")
        if any(idle in _short(f) for f in frames[-2:] for idle in _IDLE):
            continue  # a thread waiting, not working
        total += n
        seen = set()
        for frame in frames:
            if "swapserve/" in frame:
                module = frame.split("(", 1)[1].split(":")[0].split("swapserve/", 1)[1]
                seen.add(module)
        for module in seen:
            modules[module] += n
        leaves[_short(frames[-1])] += n
    share = {m: round(c / total, 3) for m, c in modules.most_common(15)} if total else {}
    top = {f: round(c / total, 3) for f, c in leaves.most_common(12)} if total else {}
    return {"samples": total, "module_share": share, "top_leaf_share": top}
