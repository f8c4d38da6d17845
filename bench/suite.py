"""The benchmark suite behind ``make bench``: every scenario, one JSON, one Markdown, PNG plots.

Scenarios (each starts its own ``swapserve`` process on 127.0.0.1; load from ``loadgen``):
  single   -- the seed model one request at a time: in-process call, a bare gRPC echo of the
              same payload, swapserve over each protocol, and the floor ratio; plus the
              ``estimator.predict`` baseline when its side virtualenv exists (``make bench-setup``).
  sweep    -- concurrency 1/4/16/64, batching off/on, 1 and 2 workers.
  swap     -- a new version every 2 s under load: latency over time, p99 vs steady p99.
  rss      -- resident memory after 2 and after 50 swaps.
  mlp      -- the 256->1024->1024->1024 MLP at 64 clients, batching off/on; load and swap cost.
  reload_storm -- 8 predicting clients without and with 20 Reload loops (5 pinning).
  http_stack -- the HTTP stack choice: aiohttp vs uvicorn + Starlette, json vs orjson.
  batching_low, model_bound, floor -- eager batching at low load and where the model dominates,
              and swapserve vs a minimal server doing the same work (bench/eager.py).
  rollout, workers_rss -- p99 while a version is gated and during its canary; the workers'
              summed RSS through a swap of a 100 MB model (bench/rollout.py).

    .venv/bin/python bench/suite.py                 # everything (about 10 minutes)
    .venv/bin/python bench/suite.py --quick --out /tmp/b   # the tiny run `make test` checks
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import eager
import grpc_cost
import loadgen
import native
import numpy as np
import rollout
from common import (
    REPO,
    REST_PORTS,
    cpu_seconds,
    export_dense_stack,
    export_versions,
    publish,
    rss_mib,
    start_server,
    stop_server,
    wait_serving,
)

from swapserve_client import Client

log = logging.getLogger("bench")
OUT = REPO / "docs" / "benchmarks"
SEED_X = {"number": np.array([[100.0]], np.float32)}
ESTIMATOR_PYTHON = REPO / ".venv-estimator" / "bin" / "python"


class Suite:
    """Shared state of one run: sizes, the seed model's exports, results."""

    def __init__(self, out: Path, quick: bool, tmp: Path) -> None:
        self.out, self.quick, self.tmp = out, quick, tmp
        self.seconds = 1.0 if quick else 5.0
        self.warmup = 0.5 if quick else 1.0
        self.results: dict[str, Any] = {
            "machine": {
                "cpus": os.cpu_count(),
                "python": platform.python_version(),
                "platform": platform.platform(),
                "processor": platform.processor() or platform.machine(),
            },
            "command": "make bench" if not quick else "bench/suite.py --quick",
        }
        self.staging = tmp / "seed-staging"
        self.sources = export_versions(tmp / "seed-unused", self.staging)

    def root(self, name: str, versions: int = 1) -> Path:
        """A fresh export root with the seed model's first ``versions`` versions."""
        root = self.tmp / name
        root.mkdir()
        for v in range(1, versions + 1):
            publish(self.sources[(v - 1) % 2], root, v)
        return root

    def load(self, port: int, protocol: str, clients: int, **kw: Any) -> loadgen.Result:
        model = kw.pop("model", "seed")
        payload = loadgen.build_request(protocol, model, kw.pop("x", SEED_X))
        return loadgen.run(
            loadgen.Load(
                target=f"127.0.0.1:{port}",
                protocol=protocol,
                payload=payload,
                clients=clients,
                processes=min(2, clients),
                duration=kw.pop("duration", self.seconds),
                warmup=kw.pop("warmup", self.warmup),
                model=model,
                **kw,
            )
        )


def in_process_p50(path: Path, x: dict[str, np.ndarray], calls: int) -> dict[str, float]:
    """The floor without gRPC: ``LoadedVersion.run`` in this process."""
    from swapserve.config.model_settings import SessionSettings
    from swapserve.model.loaded_version import LoadedVersion

    loaded = LoadedVersion.load(1, path, SessionSettings())
    try:
        for _ in range(max(50, calls // 10)):
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
        "p50_ms": round(float(np.median(ms)), 4),
        "p99_ms": round(float(np.percentile(ms, 99)), 4),
    }


def scenario_single(s: Suite) -> dict[str, Any]:
    """One client, one request at a time. The echo and swapserve runs alternate over rounds
    (their latencies pooled), so the floor ratio compares the two under the same machine
    conditions; this VM's 1-client latency drifts by ±20% from minute to minute."""
    calls = 300 if s.quick else 3000
    rounds = 2 if s.quick else 5
    out: dict[str, Any] = {"in_process": in_process_p50(s.sources[0], SEED_X, calls)}
    echo = loadgen.EchoServer()
    proc, port = start_server(s.root("single"), "--rest-port", "0")
    rest_port = REST_PORTS[proc.pid]
    runs: dict[str, list[loadgen.Result]] = {}
    try:
        wait_serving(f"127.0.0.1:{port}")
        echo_payload = loadgen.build_request("echo", "seed", SEED_X)
        for _ in range(rounds):
            runs.setdefault("echo", []).append(
                loadgen.run(
                    loadgen.Load(
                        f"127.0.0.1:{echo.port}", "echo", echo_payload,
                        duration=s.seconds, warmup=s.warmup,
                    )
                )
            )  # fmt: skip
            for p in ("swapserve", "tfserving", "v2"):
                runs.setdefault(p, []).append(s.load(port, p, 1))
            for p in loadgen.HTTP_PATHS:
                runs.setdefault(p, []).append(s.load(rest_port, p, 1))
    finally:
        stop_server(proc)
        echo.stop()
    out["rounds"] = rounds
    out["grpc_echo"] = loadgen.pooled(runs.pop("echo")).summary()
    out["protocols"] = {p: loadgen.pooled(rs).summary() for p, rs in runs.items()}
    floor = out["in_process"]["p50_ms"] + out["grpc_echo"]["p50_ms"]
    ours = out["protocols"]["swapserve"]["p50_ms"]
    out["floor_ms"] = round(floor, 4)
    out["floor_ratio"] = round(ours / floor, 3)
    out["http_ratio"] = round(out["protocols"]["tfserving_rest"]["p50_ms"] / ours, 3)
    out["estimator"] = estimator_baseline(s)
    if out["estimator"].get("p50_ms"):
        out["speedup_vs_estimator"] = round(out["estimator"]["p50_ms"] / ours, 1)
    return out


def estimator_baseline(s: Suite) -> dict[str, Any]:
    """``estimator.predict`` per call, run in its own virtualenv (TF 2.15 + estimator)."""
    if not ESTIMATOR_PYTHON.exists():
        return {"skipped": "no .venv-estimator: run `make bench-setup` first"}
    calls = 5 if s.quick else 30
    proc = subprocess.run(
        [
            str(ESTIMATOR_PYTHON),
            str(REPO / "bench" / "estimator_baseline.py"),
            "--calls",
            str(calls),
            "--model-dir",
            str(s.tmp / "estimator"),
        ],
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    if proc.returncode != 0:
        return {"failed": proc.stderr.strip().splitlines()[-1:]}
    return json.loads(proc.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def scenario_sweep(s: Suite) -> dict[str, Any]:
    rows = []
    levels = (1, 4) if s.quick else (1, 4, 16, 64)
    configs = [(1, False), (1, True)] if s.quick else [(1, False), (1, True), (2, False), (2, True)]
    for workers, batching in configs:
        args = ["--workers", str(workers)]
        if batching:
            # A request waiting for its batch holds an RPC thread: allow a full batch of them.
            args += [
                "--enable-batching",
                "--max-batch-size",
                "64",
                "--batch-timeout-micros",
                "500",
                "--grpc-threads",
                "80",
            ]
        proc, port = start_server(s.root(f"sweep-{workers}-{batching}"), *args)
        try:
            wait_serving(f"127.0.0.1:{port}")
            time.sleep(1.0 if workers > 1 else 0)  # let every worker load
            for clients in levels:
                r = s.load(port, "swapserve", clients).summary()
                rows.append({"workers": workers, "batching": batching, "clients": clients, **r})
                log.info("sweep %s", rows[-1])
        finally:
            stop_server(proc)
    return {"rows": rows}


def scenario_swap(s: Suite) -> dict[str, Any]:
    clients = 4 if s.quick else 16
    steady_s, swap_s, every = (2.0, 4.0, 1.0) if s.quick else (10.0, 20.0, 2.0)
    root = s.root("swap")
    proc, port = start_server(root, "--poll-seconds", "0.25")
    try:
        wait_serving(f"127.0.0.1:{port}")
        steady = s.load(port, "swapserve", clients, duration=steady_s, track_versions=True)
        published: list[float] = []
        stop = threading.Event()
        t_begin = [0.0]

        def exporter() -> None:
            version = 2
            # The load's measured phase starts ~2 s (process start) + warm-up after run().
            time.sleep(2.0 + s.warmup)
            t_begin[0] = time.perf_counter()
            while not stop.wait(every):
                publish(s.sources[version % 2], root, version)
                published.append(time.perf_counter() - t_begin[0])
                version += 1

        t = threading.Thread(target=exporter)
        t.start()
        during = s.load(port, "swapserve", clients, duration=swap_s, track_versions=True)
        stop.set()
        t.join()
    finally:
        stop_server(proc)
    st, du = steady.summary(), during.summary()
    buckets = np.arange(0, swap_s + 0.5, 0.5)
    series = []
    for lo, hi in itertools.pairwise(buckets):
        sel = (during.starts >= lo) & (during.starts < hi)
        if sel.any():
            lat = during.latencies[sel] * 1000
            series.append(
                {
                    "t": float(lo),
                    "p50_ms": float(np.median(lat)),
                    "p99_ms": float(np.percentile(lat, 99)),
                    "requests": int(sel.sum()),
                }
            )
    return {
        "clients": clients,
        "swap_every_s": every,
        "steady": st,
        "during_swaps": du,
        "swaps": len(published),
        "versions_answered": len(set(during.versions.tolist())),
        "p99_ratio": round(du["p99_ms"] / st["p99_ms"], 3),
        "published_at_s": [round(x, 2) for x in published],
        "series": series,
    }


def scenario_rss(s: Suite) -> dict[str, Any]:
    swaps = 6 if s.quick else 50
    root = s.root("rss")
    proc, port = start_server(root, "--poll-seconds", "600")
    target = f"127.0.0.1:{port}"
    marks: dict[int, float] = {}
    try:
        wait_serving(target)
        with Client(target, timeout=120) as client:
            for i in range(1, swaps + 1):
                publish(s.sources[i % 2], root, i + 1)
                client.reload("seed")
                for _ in range(20):
                    client.predict("seed", SEED_X)
                if i in (2, swaps) or i % 10 == 0:
                    time.sleep(0.5)  # the old version is released on its reaper thread
                    marks[i] = round(rss_mib(proc.pid), 1)
    finally:
        stop_server(proc)
    return {"swaps": swaps, "rss_mib": marks, "ratio": round(marks[swaps] / marks[2], 3)}


def export_mlp(root: Path, version: int, seed: int) -> Path:
    """256 -> 1024 -> 1024 -> 1024 (9 MiB of weights)."""
    return export_dense_stack(root, version, [256, 1024, 1024, 1024], 0.05, seed)


def scenario_mlp(s: Suite) -> dict[str, Any]:
    from swapserve.config.model_settings import SessionSettings
    from swapserve.model.loaded_version import LoadedVersion

    root = s.tmp / "mlp"
    path = export_mlp(root, 1, seed=1)
    staged = export_mlp(s.tmp / "mlp-next", 2, seed=2)
    clients, max_batch, timeout_us = (8, 8, 2000) if s.quick else (64, 64, 2000)
    loaded = LoadedVersion.load(1, path, SessionSettings())
    try:
        call_ms = {}
        for rows in (1, max_batch):
            x = {"x": np.ones([rows, 256], np.float32)}
            for _ in range(20):
                loaded.run("", x)
            t0 = time.perf_counter()
            for _ in range(50):
                loaded.run("", x)
            call_ms[rows] = (time.perf_counter() - t0) / 50 * 1000
    finally:
        loaded.close()
    x1 = {"x": np.random.default_rng(0).normal(size=(1, 256)).astype(np.float32)}
    out: dict[str, Any] = {
        "clients": clients,
        "in_process_call_ms": call_ms,
        "weights_mib": round(
            sum(f.stat().st_size for f in (path / "variables").iterdir()) / 2**20, 2
        ),
    }
    batching_args = [
        "--enable-batching",
        "--max-batch-size", str(max_batch),
        "--batch-timeout-micros", str(timeout_us),
        "--num-batch-threads", "2",
        "--grpc-threads", str(clients + 16),
    ]  # fmt: skip
    # Three servers up at once, their runs interleaved over rounds: the MLP without and with
    # batching, and the seed model (a ~free call) at the same load -- the most batching could
    # reach here, since it can at best remove the model's cost, not the RPC's.
    arms = (("mlp", "mlp", []), ("mlp_batching", "mlp", batching_args), ("free_model", "seed", []))
    rounds = 1 if s.quick else 3
    out["runs"], out["ceiling_by_workers"], out["throughput_ratio_by_workers"] = [], {}, {}
    for workers in (1,) if s.quick else (1, 2):
        servers = {}
        try:
            for arm, model, extra in arms:
                arm_root = root if model == "mlp" else s.root(f"mlp-free-{workers}")
                proc, port = start_server(arm_root, "--workers", str(workers), *extra, model=model)
                servers[arm] = (proc, port, model)
            for _, port, model in servers.values():
                wait_serving(f"127.0.0.1:{port}", model=model)
            time.sleep(1.0 if workers > 1 else 0)  # let every worker load
            results: dict[str, list[loadgen.Result]] = {arm: [] for arm in servers}
            for _ in range(rounds):
                for arm, (_, port, model) in servers.items():
                    x = x1 if model == "mlp" else SEED_X
                    results[arm].append(
                        s.load(port, "swapserve", clients, model=model, x=x,
                               duration=s.seconds * 2 / rounds)
                    )  # fmt: skip
            summary = {arm: loadgen.pooled(rs).summary() for arm, rs in results.items()}
            for arm, batching in (("mlp", False), ("mlp_batching", True)):
                out["runs"].append({"workers": workers, "batching": batching, **summary[arm]})
            off, on = summary["mlp"]["throughput_rps"], summary["mlp_batching"]["throughput_rps"]
            out["throughput_ratio_by_workers"][workers] = round(on / off, 2)
            out["ceiling_by_workers"][workers] = round(
                summary["free_model"]["throughput_rps"] / off, 2
            )
            if workers == 1:
                out["no_batching"], out["batching"] = summary["mlp"], summary["mlp_batching"]
                with Client(f"127.0.0.1:{servers['mlp_batching'][1]}", timeout=120) as client:
                    shutil.copytree(staged, root / "2")
                    swap = client.reload("mlp")
                    out["load_seconds_v1"] = next(
                        v.load_seconds for v in client.status("mlp") if v.version == 1
                    )
                    out["swap_load_seconds"] = round(swap.load_seconds, 3)
        finally:
            for proc, _, _ in servers.values():
                stop_server(proc)
            shutil.rmtree(root / "2", ignore_errors=True)
    on, off = out["batching"], out["no_batching"]
    out["throughput_ratio"] = round(on["throughput_rps"] / off["throughput_rps"], 2)
    out["p99_bound_ms"] = round(timeout_us / 1000 + 2 * call_ms[max_batch], 2)
    out["p99_within_bound"] = on["p99_ms"] <= out["p99_bound_ms"]
    return out


def scenario_servicer(s: Suite) -> dict[str, Any]:
    """Sync thread pool vs grpc.aio for a server whose handler runs the seed model."""
    import servicer_models

    return {"rows": servicer_models.measure(s.sources[0], s.seconds, s.warmup)}


def scenario_gc(s: Suite) -> dict[str, Any]:
    """Full garbage collections during the MLP peer load (V2, batching), with swapserve's
    start-up ``gc.freeze`` and without it (``bench/gc_pauses.py``)."""
    import gc_pauses

    root = s.tmp / "gc"
    export_mlp(root, 1, seed=1)
    clients = 8 if s.quick else 64
    args = ["--enable-batching", "--max-batch-size", "64", "--batch-timeout-micros", "2000",
            "--grpc-threads", str(clients + 16)]  # fmt: skip
    rows = []
    for freeze in (True, False):
        stats = s.tmp / f"gc-{int(freeze)}.json"
        command = (sys.executable, str(REPO / "bench" / "gc_pauses.py"), "serve",
                   *(() if freeze else ("--no-freeze",)), str(stats))  # fmt: skip
        proc, port = start_server(root, *args, model="mlp", command=command)
        try:
            wait_serving(f"127.0.0.1:{port}", model="mlp")
            begin = time.time()
            x = {"x": np.ones([1, 256], np.float32)}
            r = s.load(port, "v2", clients, model="mlp", x=x, duration=s.seconds * 2).summary()
            end = time.time()
        finally:
            stop_server(proc)
        rows.append({"gc_freeze": freeze, **gc_pauses.in_window(stats, begin, end), **r})
        log.info("gc %s", rows[-1])
    return {"clients": clients, "rows": rows}


def export_wide(root: Path, version: int) -> Path:
    """8 independent 256->512 towers: the kind of graph that gains from TF's inter-op pool."""
    import tensorflow as tf

    from swapserve.export import export_model

    rng = np.random.default_rng(0)

    class Wide(tf.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = [
                tf.Variable(rng.normal(0, 0.05, (256, 512)).astype(np.float32)) for _ in range(8)
            ]

        @tf.function(input_signature=[tf.TensorSpec([None, 256], tf.float32, name="x")])
        def serve(self, x: tf.Tensor) -> dict[str, tf.Tensor]:
            towers = [tf.reduce_sum(tf.tanh(tf.matmul(x, w)), 1, keepdims=True) for w in self.w]
            return {"y": tf.concat(towers, 1)}

    module = Wide()
    return export_model(module, root, signatures={"serving_default": module.serve}, version=version)


def run_thread_in_process(s: Suite) -> list[dict[str, Any]]:
    """Per model and batch size: one call's median ms in TF's inter-op pool and in the caller's
    thread, back to back and with 1 ms idle pauses, and what ``--run-thread auto`` picks when
    the model runs batches of that size."""
    from swapserve.config.model_settings import SessionSettings
    from swapserve.model.loaded_version import LoadedVersion

    models = {
        "seed": (s.sources[0], "number", 1),
        "mlp": (export_mlp(s.tmp / "rt-mlp", 1, seed=1), "x", 256),
        "wide": (export_wide(s.tmp / "rt-wide", 1), "x", 256),
    }
    calls = 50 if s.quick else 400
    rows = []
    for name, (path, input_name, width) in models.items():
        loaded = {
            m: LoadedVersion.load(1, path, SessionSettings(run_thread=m))
            for m in ("pool", "caller")
        }
        try:
            for rows_n in (1, 64):
                x = {input_name: np.ones([rows_n, width], np.float32)}
                picked = LoadedVersion.load(
                    1, path, SessionSettings(run_thread="auto"), timing_rows=rows_n
                )
                picked.close()
                row: dict[str, Any] = {"model": name, "rows": rows_n}
                row["auto_picks"] = picked.run_thread
                for pause in (0.0, 0.001):
                    for mode, version in loaded.items():
                        lat = []
                        for _ in range(calls):
                            t0 = time.perf_counter()
                            version.run("", x)
                            lat.append(time.perf_counter() - t0)
                            if pause:
                                time.sleep(pause)
                        key = f"{mode}_ms" + ("_1ms_pauses" if pause else "")
                        row[key] = round(float(np.median(lat)) * 1000, 4)
                rows.append(row)
        finally:
            for version in loaded.values():
                version.close()
    return rows


def scenario_caller(s: Suite) -> dict[str, Any]:
    """Where the graph runs (--run-thread): in-process per model, then the seed model served
    three ways, all servers up at once and runs interleaved."""
    in_process = run_thread_in_process(s)
    servers = {}
    for name, args in (
        ("pool", ["--run-thread", "pool"]),
        ("caller", ["--run-thread", "caller"]),
        ("auto (default)", []),
    ):
        proc, port = start_server(s.root(f"caller-{len(servers)}"), *args)
        wait_serving(f"127.0.0.1:{port}")
        servers[name] = (proc, port)
    runs: dict[tuple[str, int], list[dict[str, Any]]] = {}
    try:
        for _ in range(2 if s.quick else 4):
            for name, (_, port) in servers.items():
                for clients in (1, 16):
                    r = s.load(port, "swapserve", clients, duration=s.seconds * 0.6).summary()
                    runs.setdefault((name, clients), []).append(r)
    finally:
        for proc, _ in servers.values():
            stop_server(proc)
    rows = []
    for (name, clients), rs in runs.items():
        rows.append(
            {
                "run_thread": name,
                "clients": clients,
                "rounds": len(rs),
                "median_p50_ms": round(float(np.median([r["p50_ms"] for r in rs])), 3),
                "median_p99_ms": round(float(np.median([r["p99_ms"] for r in rs])), 3),
                "median_throughput_rps": round(
                    float(np.median([r["throughput_rps"] for r in rs])), 1
                ),
            }
        )
    return {"in_process": in_process, "rows": rows}


MLSERVER = REPO / ".venv-mlserver" / "bin" / "mlserver"


def _free_port() -> int:
    # MLServer cannot bind port 0 and report it, so the bench picks ports for it (loopback).
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_mlserver(model_dir: Path, name: str, work: Path, batch: int) -> tuple[Any, int, int]:
    """MLServer serving ``model_dir`` through bench/mlserver_runtime; returns (process, gRPC
    port, HTTP port)."""
    folder = work / f"mlserver-{name}"
    folder.mkdir()
    grpc_port, http_port = _free_port(), _free_port()
    (folder / "settings.json").write_text(
        json.dumps(
            {
                "grpc_port": grpc_port,
                "http_port": http_port,
                "metrics_port": _free_port(),
                "host": "127.0.0.1",
                "parallel_workers": 0,
                "debug": False,
            }
        )
    )
    model: dict[str, Any] = {
        "name": name,
        "implementation": "savedmodel_runtime.SavedModelRuntime",
        "parameters": {"uri": str(model_dir)},
    }
    if batch > 1:  # MLServer's adaptive batching, its counterpart of ours
        model.update(max_batch_size=batch, max_batch_time=0.002)
    (folder / "model-settings.json").write_text(json.dumps(model))
    env = {
        **os.environ,
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "PYTHONPATH": str(REPO / "bench" / "mlserver_runtime"),
    }
    proc = subprocess.Popen(
        [str(MLSERVER), "start", str(folder)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    import grpc
    from tritonclient.grpc import service_pb2, service_pb2_grpc

    deadline = time.monotonic() + 180
    with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        while time.monotonic() < deadline:
            try:
                if stub.ModelReady(service_pb2.ModelReadyRequest(name=name), timeout=2).ready:
                    return proc, grpc_port, http_port
            except grpc.RpcError:
                pass
            if proc.poll() is not None:
                break
            time.sleep(0.5)
    proc.kill()
    raise RuntimeError("MLServer did not become ready")


def scenario_mlserver(s: Suite) -> dict[str, Any]:
    """The same model, the same V2 load: swapserve vs MLServer."""
    if not MLSERVER.exists():
        return {"summary": "not run: no .venv-mlserver (make bench-setup)", "met": None}
    cases = [("seed", s.sources[0], 16, 1, SEED_X)]
    mlp_root = s.tmp / "mlp-peer"
    mlp = export_mlp(mlp_root, 1, seed=1)
    cases.append(("mlp", mlp, 64, 64, {"x": np.ones([1, 256], np.float32)}))
    rows = []
    for name, path, wanted_clients, batch, x in cases:
        clients = min(wanted_clients, 4) if s.quick else wanted_clients
        root = s.tmp / f"peer-{name}"
        shutil.copytree(path, root / "1")
        args = ["--grpc-threads", str(clients + 16)]
        if batch > 1:
            args += [
                "--enable-batching",
                "--max-batch-size",
                str(batch),
                "--batch-timeout-micros",
                "2000",
            ]
        for server in ("swapserve", "mlserver"):
            if server == "swapserve":
                proc, port = start_server(root, *args, "--rest-port", "0", model=name)
                http_port = REST_PORTS[proc.pid]
                wait_serving(f"127.0.0.1:{port}", model=name)
            else:
                proc, port, http_port = start_mlserver(path, name, s.tmp, batch)
            try:
                for transport, protocol, target in (
                    ("gRPC", "v2", port),
                    ("HTTP", "v2_rest", http_port),
                ):
                    r = s.load(target, protocol, clients, model=name, x=x).summary()
                    rows.append(
                        {
                            "model": name,
                            "server": server,
                            "transport": transport,
                            "clients": clients,
                            "batching": batch > 1,
                            **r,
                        }
                    )
                    log.info("peer %s", rows[-1])
            finally:
                stop_server(proc)
    ratios = []
    for name, *_ in cases:
        for transport in ("gRPC", "HTTP"):
            ours, theirs = (
                next(
                    r
                    for r in rows
                    if r["model"] == name and r["server"] == who and r["transport"] == transport
                )
                for who in ("swapserve", "mlserver")
            )
            ratios.append(
                {
                    "model": name,
                    "transport": transport,
                    "throughput_ratio": round(
                        ours["throughput_rps"] / max(theirs["throughput_rps"], 1e-9), 2
                    ),
                    "p99_ratio": round(ours["p99_ms"] / theirs["p99_ms"], 2),
                }
            )
    met = all(r["throughput_ratio"] > 1 and r["p99_ratio"] < 1 for r in ratios)
    summary = "; ".join(
        f"{r['model']} {r['transport']}: throughput ×{r['throughput_ratio']}, p99 "
        f"×{r['p99_ratio']} (swapserve/MLServer)"
        for r in ratios
    )
    return {"rows": rows, "ratios": ratios, "met": met, "summary": summary}


def _reload_loops(
    target: str,
    *,
    loops: int,
    pinning: int,
    pin: int,
    newest: int,
    stop: threading.Event,
    backoff: float = 0.1,
) -> dict[str, Any]:
    """``loops`` threads calling Reload back to back (``pinning`` of them pin ``pin``, the rest
    follow the policy) until ``stop``; every answer is checked against what it must be."""
    from swapserve_client import SwapserveError

    counts: dict[str, int] = {}
    latencies: list[float] = []
    lock = threading.Lock()  # guards counts and latencies

    def loop(pinned: bool) -> None:
        with Client(target, timeout=60) as client:
            while not stop.is_set():
                t0 = time.perf_counter()
                try:
                    result = client.reload("seed", pin if pinned else 0)
                    want = pin if pinned else newest
                    key = "ok" if result.version == want else f"wrong version {result.version}"
                except SwapserveError as err:
                    key = err.code.name
                with lock:
                    counts[key] = counts.get(key, 0) + 1
                    latencies.append(time.perf_counter() - t0)
                if key == "RESOURCE_EXHAUSTED":
                    stop.wait(backoff)  # what a client told "busy" does (gRPC's retry guidance)

    threads = [threading.Thread(target=loop, args=(i < pinning,)) for i in range(loops)]
    for t in threads:
        t.start()
    stop.wait()
    for t in threads:
        t.join()
    ms = np.array(latencies or [0.0]) * 1000
    return {
        "answers": counts,
        "reloads": len(latencies),
        "p50_ms": round(float(np.median(ms)), 3),
        "p99_ms": round(float(np.percentile(ms, 99)), 3),
    }


def scenario_reload_storm(s: Suite) -> dict[str, Any]:
    """8 predicting clients alone, then with 20 Reload loops (5 of them pinning), in one run on
    one server. Pinning the served version measures the admin path itself; pinning the older
    version makes every pin/unpin alternation load a model again (its CPU is the cost then)."""
    clients, loops, pinning = (4, 6, 2) if s.quick else (8, 20, 5)
    root = s.root("reload_storm", versions=2)
    proc, port = start_server(root, "--poll-seconds", "1", "--reload-settle-seconds", "0")
    target = f"127.0.0.1:{port}"
    out: dict[str, Any] = {"clients": clients, "reload_loops": loops, "pinning_loops": pinning}
    try:
        wait_serving(target)
        quiet = out["without_reloads"] = s.load(port, "swapserve", clients).summary()
        for name, pin in (("pin_served", 2), ("pin_older", 1)):
            stop = threading.Event()
            storm: dict[str, Any] = {}
            runner = threading.Thread(
                target=lambda pin=pin, stop=stop, storm=storm: storm.update(
                    _reload_loops(
                        target, loops=loops, pinning=pinning, pin=pin, newest=2, stop=stop
                    )
                )
            )
            runner.start()
            try:
                during = s.load(port, "swapserve", clients).summary()
            finally:
                stop.set()
                runner.join()
            out[name] = {
                "with_reloads": during,
                "reloads": storm,
                "p50_ratio": round(during["p50_ms"] / quiet["p50_ms"], 3),
                "p99_ratio": round(during["p99_ms"] / quiet["p99_ms"], 3),
                "throughput_ratio": round(during["throughput_rps"] / quiet["throughput_rps"], 3),
            }
    finally:
        stop_server(proc)
    return out


HTTPSTACK_PYTHON = REPO / ".venv-httpstack" / "bin" / "python"
STACK_VARIANTS = (  # (stack, JSON module, uvloop)
    ("aiohttp", "json", False),
    ("aiohttp", "orjson", False),
    ("aiohttp", "json", True),
    ("starlette", "json", False),
    ("starlette", "json", True),
    ("starlette", "orjson", True),
)


def _start_stack(stack: str, codec: str, uv: bool) -> tuple[subprocess.Popen[bytes], int]:
    port = _free_port()
    cmd = [str(HTTPSTACK_PYTHON), str(REPO / "bench" / "http_stacks.py"), "--stack", stack]
    cmd += ["--json", codec, "--port", str(port)] + (["--uvloop"] if uv else [])
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc, port
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                raise RuntimeError(f"{stack} did not start") from None
            time.sleep(0.1)


def scenario_http_stack(s: Suite) -> dict[str, Any]:
    """The HTTP stack choice: the same predict handler on aiohttp and uvicorn + Starlette
    (bench/http_stacks.py), at 1 and 16 clients, with server CPU per request; rounds
    interleaved, medians reported (client and server share the 2 cores, so one run is noisy)."""
    if not HTTPSTACK_PYTHON.exists():
        return {"summary": "not run: no .venv-httpstack (make bench-setup)", "met": None}
    runs: dict[tuple[str, str, int], list[dict[str, Any]]] = {}
    for _ in range(1 if s.quick else 3):
        for stack, codec, uv in STACK_VARIANTS:
            proc, port = _start_stack(stack, codec, uv)
            try:
                for clients in (1, 16):
                    cpu = cpu_seconds(proc.pid)
                    result = s.load(port, "tfserving_rest", clients, model="m")
                    per_request = (cpu_seconds(proc.pid) - cpu) / max(result.requests, 1)
                    name = stack + (" + uvloop" if uv else "")
                    runs.setdefault((name, codec, clients), []).append(
                        # CPU over the warm-up too: a slight overestimate for every row alike.
                        {**result.summary(), "server_cpu_us_per_request": 1e6 * per_request}
                    )
            finally:
                proc.terminate()
                proc.wait(10)
    rows = []
    for (name, codec, clients), results in runs.items():
        med = {
            k: round(float(np.median([r[k] for r in results])), 3)
            for k in ("throughput_rps", "p50_ms", "p99_ms", "server_cpu_us_per_request")
        }
        rows.append({"stack": name, "json": codec, "clients": clients, "rounds": len(results),
                     "errors": sum(r["errors"] for r in results), **med})  # fmt: skip
        log.info("http stack %s", rows[-1])
    best = {c: max((r for r in rows if r["clients"] == c), key=lambda r: r["throughput_rps"])
            for c in (1, 16)}  # fmt: skip
    summary = "; ".join(
        f"{c} client(s): fastest {b['stack']} / {b['json']} ({b['throughput_rps']} req/s median)"
        for c, b in best.items()
    )
    return {"rows": rows, "met": None, "summary": summary}


SCENARIOS: dict[str, Callable[[Suite], dict[str, Any]]] = {
    "single": scenario_single,
    "sweep": scenario_sweep,
    "swap": scenario_swap,
    "rss": scenario_rss,
    "mlp": scenario_mlp,
    "servicer": scenario_servicer,
    "caller": scenario_caller,
    "gc": scenario_gc,
    "mlserver": scenario_mlserver,
    "reload_storm": scenario_reload_storm,
    "http_stack": scenario_http_stack,
    "batching_low": eager.scenario_batching_low,
    "model_bound": eager.scenario_model_bound,
    "floor": eager.scenario_floor,
    "rollout": rollout.scenario_rollout,
    "workers_rss": rollout.scenario_workers_rss,
    "native_loadgen": native.scenario_native_loadgen,
    "grpc_cost": grpc_cost.scenario_grpc_cost,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes (the harness test)")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--only", nargs="*", choices=list(SCENARIOS), help="run these scenarios")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    args.out.mkdir(parents=True, exist_ok=True)
    previous = args.out / "results.json"
    with tempfile.TemporaryDirectory() as tmp:
        suite = Suite(args.out, args.quick, Path(tmp))
        if args.only and previous.exists():
            # Re-running some scenarios keeps the others' last results.
            kept = json.loads(previous.read_text())
            suite.results = {**kept, **{k: v for k, v in suite.results.items() if k != "command"}}
        for name in args.only or SCENARIOS:
            log.info("scenario %s", name)
            t0 = time.monotonic()
            suite.results[name] = SCENARIOS[name](suite)
            suite.results[name]["wall_seconds"] = round(time.monotonic() - t0, 1)
            if args.only:
                suite.results[name]["command"] = "bench/suite.py --only " + " ".join(args.only)
    (args.out / "results.json").write_text(json.dumps(suite.results, indent=2) + "\n")
    import report

    report.write(suite.results, args.out)
    log.info("wrote %s", args.out)


if __name__ == "__main__":
    sys.exit(main())
