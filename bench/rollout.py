"""Safe-rollout scenarios of ``make bench`` (issue 31).

rollout      -- 8 clients on the seed model with ``--canary-percent 20``: Predict p99 while a new
                version is gated and while it runs as a canary, against the steady p99 of the
                same run; and how long the gates took on the 1,000 sampled requests.
workers_rss  -- ``--workers 2`` swapping a 100 MB model under load: the workers' RSS summed every
                10 ms; the peak above steady, in model sizes (workers swap one at a time: about
                1 model, where swapping together would take 2).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import loadgen
import numpy as np
from common import export_dense_stack, publish, rss_mib, wait_serving

from swapserve_client import Client


class Server:
    """``swapserve`` on 127.0.0.1:<free port>, its log kept (the gates' timings are in it)."""

    def __init__(
        self, root: Path, *args: str, model: str = "seed", env: dict[str, str] | None = None
    ) -> None:
        self.proc = subprocess.Popen(
            [
                str(Path(sys.executable).parent / "swapserve"),
                "--model-name", model, "--export-root", str(root), "--host", "127.0.0.1",
                "--port", "0", "--drain-seconds", "0", *args,
            ],
            stderr=subprocess.PIPE, text=True,
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})},
        )  # fmt: skip
        self.lines: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            found = [
                m for ln in list(self.lines) if (m := re.search(r"listening on [\d.]+:(\d+)", ln))
            ]
            if found:
                self.port = int(found[0].group(1))
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise RuntimeError("server did not start:\n" + "".join(self.lines))

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def workers(self) -> list[int]:
        """The worker processes' pids (``--workers``)."""
        pids = []
        for task in Path(f"/proc/{self.proc.pid}/task").iterdir():
            pids += [int(p) for p in (task / "children").read_text().split()]
        return pids


def _phases(target: str, stop: threading.Event, out: list[tuple[float, str]]) -> None:
    """(perf_counter, rollout phase) every 10 ms until stopped."""
    with Client(target, timeout=10) as client:
        while not stop.wait(0.01):
            out.append((time.perf_counter(), client.model_status("seed").rollout.phase))


def _windows(samples: list[tuple[float, str]], phase: str) -> list[tuple[float, float]]:
    """The intervals the poller saw ``phase`` in (from its first sample to the next other)."""
    spans: list[tuple[float, float]] = []
    start: float | None = None
    for t, p in samples:
        if p == phase and start is None:
            start = t
        elif p != phase and start is not None:
            spans.append((start, t))
            start = None
    if start is not None and samples:
        spans.append((start, samples[-1][0]))
    return spans


def _p99(result: loadgen.Result, spans: list[tuple[float, float]], origin: float) -> dict[str, Any]:
    starts = result.starts + origin
    mask = np.zeros(len(starts), bool)
    for lo, hi in spans:
        mask |= (starts >= lo) & (starts < hi)
    lat = result.latencies[mask] * 1000
    if not len(lat):
        return {"requests": 0, "p50_ms": None, "p99_ms": None}
    return {
        "requests": len(lat),
        "p50_ms": round(float(np.median(lat)), 3),
        "p99_ms": round(float(np.percentile(lat, 99)), 3),
    }


def scenario_rollout(s: Any) -> dict[str, Any]:
    clients = 4 if s.quick else 8
    steady_s, canary_s = (2.0, 2.0) if s.quick else (8.0, 8.0)
    rounds = 1 if s.quick else 3
    root = s.root("rollout")
    server = Server(root, "--poll-seconds", "0.25", "--canary-percent", "20",
                    "--canary-seconds", str(canary_s))  # fmt: skip
    target = f"127.0.0.1:{server.port}"
    samples: list[tuple[float, str]] = []
    stop = threading.Event()
    published: list[float] = []
    try:
        wait_serving(target)
        poller = threading.Thread(target=_phases, args=(target, stop, samples))
        poller.start()
        origin = time.perf_counter() + 2.0 + s.warmup  # loadgen's measured phase starts here
        duration = steady_s + rounds * (canary_s + 10.0)

        def exporter() -> None:
            time.sleep(max(0.0, origin + steady_s - time.perf_counter()))
            for i in range(rounds):
                published.append(time.perf_counter())
                publish(s.sources[(i + 1) % 2], root, i + 2)
                time.sleep(canary_s + 10.0)

        t = threading.Thread(target=exporter)
        t.start()
        result = s.load(server.port, "swapserve", clients, duration=duration, track_versions=True)
        t.join()
    finally:
        stop.set()
        server.stop()
    gated = [
        (float(m.group(1)), int(m.group(2)))
        for ln in server.lines
        if (m := re.search(r"passed the gates \[gated in ([\d.]+)s on (\d+) requests", ln))
    ][1:]  # the first version's gate (nothing served yet) is not a comparison
    # ``starts`` are relative to the measured phase's begin; shift them to perf_counter time.
    steady = _p99(result, [(origin, published[0] if published else origin + steady_s)], origin)
    gating = _p99(result, _windows(samples, "GATING"), origin)
    canary = _p99(result, _windows(samples, "CANARY"), origin)

    def ratio(part: dict[str, Any]) -> float | None:
        return round(part["p99_ms"] / steady["p99_ms"], 3) if part["p99_ms"] else None

    return {
        "clients": clients,
        "canary_percent": 20,
        "canary_seconds": canary_s,
        "rounds": rounds,
        "steady": steady,
        "gating": gating,
        "canary": canary,
        "gating_p99_ratio": ratio(gating),
        "canary_p99_ratio": ratio(canary),
        "gate_seconds": [g for g, _ in gated],
        "gate_requests": [n for _, n in gated],
        "errors": sum(result.errors.values()),
        "promoted": sum("after its canary" in ln for ln in server.lines),
    }


def scenario_workers_rss(s: Any) -> dict[str, Any]:
    width = 1000 if s.quick else 5000  # 5000 x 5000 floats: a 100 MB variable
    root = s.tmp / "workers-rss"
    root.mkdir()
    export_dense_stack(root, 1, [1, width, width], 0.001, seed=1)
    staging = s.tmp / "workers-rss-staging"
    export_dense_stack(staging, 2, [1, width, width], 0.001, seed=2)
    out: dict[str, Any] = {"workers": 2, "model_mib": round(width * width * 4 / 2**20, 1)}
    # TensorFlow's oneDNN CPU allocator pools what a released version frees (reused by the next
    # load, never returned); with oneDNN's ops off, freed tensors go back to the OS at once.
    for arm, env in (("onednn_default", {}), ("onednn_off", {"TF_ENABLE_ONEDNN_OPTS": "0"})):
        shutil.rmtree(root / "2", ignore_errors=True)
        out[arm] = _workers_swap(root, staging, env, out["model_mib"])
    return out


def _workers_swap(
    root: Path, staging: Path, env: dict[str, str], model_mib: float
) -> dict[str, Any]:
    server = Server(root, "--workers", "2", "--poll-seconds", "600", model="big", env=env)
    target = f"127.0.0.1:{server.port}"
    timeline: list[tuple[float, float]] = []
    stop = threading.Event()
    try:
        deadline = time.monotonic() + 120
        while sum("serving (loaded in" in ln for ln in server.lines) < 2:
            if time.monotonic() > deadline:
                raise RuntimeError("workers did not start")
            time.sleep(0.1)
        wait_serving(target, "big")
        pids = server.workers()

        def sample() -> None:
            while not stop.wait(0.01):
                with contextlib.suppress(OSError, RuntimeError):
                    timeline.append((time.perf_counter(), sum(rss_mib(p) for p in pids)))

        sampler = threading.Thread(target=sample)
        sampler.start()
        x = {"x": np.ones((1, 1), np.float32)}
        with Client(target, timeout=120) as client:
            for _ in range(200):
                client.predict("big", x)
            time.sleep(1.0)
            steady = float(np.median([r for _, r in timeline[-50:]]))
            t_swap = time.perf_counter()
            publish(staging / "2", root, 2)
            outcome = client.reload("big")
            for _ in range(200):
                client.predict("big", x)
            time.sleep(2.0)
        stop.set()
        sampler.join()
    finally:
        stop.set()
        server.stop()
    after = float(np.median([r for _, r in timeline[-50:]]))
    peak = max(r for t, r in timeline if t >= t_swap)
    return {
        "steady_rss_sum_mib": round(steady, 1),
        "peak_rss_sum_mib": round(peak, 1),
        "after_rss_sum_mib": round(after, 1),
        "peak_above_steady_mib": round(peak - steady, 1),
        "peak_above_steady_models": round((peak - steady) / model_mib, 2),
        "swapped_to": outcome.version,
        "swaps_logged": sum("swapped version 1 -> 2" in ln for ln in server.lines),
    }
