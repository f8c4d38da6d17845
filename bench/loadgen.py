"""A closed-loop load generator for swapserve, TF Serving's API, KServe V2 and an echo over gRPC,
and TF Serving's REST API and V2 over HTTP.

Each of ``processes`` processes runs ``grpc.aio`` coroutines on its own channel; every coroutine
sends its next request as soon as the previous one returns (closed loop), so ``clients`` is the
concurrency. Requests are serialized once up front and sent as bytes, keeping the client's own
CPU cost low -- it shares the machine with the server, and its CPU use is reported. Results
come back per request (start time, latency, status, version) for histograms and time series.
Bounded by ``duration`` (and optionally ``max_requests``); loopback targets only.
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import os
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import grpc
import numpy as np

PATHS = {
    "swapserve": "/swapserve.v1.PredictionService/Predict",
    "tfserving": "/tensorflow.serving.PredictionService/Predict",
    "v2": "/inference.GRPCInferenceService/ModelInfer",
    "echo": "/bench.Echo/Echo",
}


HTTP_PATHS = {
    "tfserving_rest": "/v1/models/{model}:predict",
    "v2_rest": "/v2/models/{model}/infer",
}
"""HTTP protocols (on the server's --rest-port), by URL path."""


def build_request(protocol: str, model: str, inputs: dict[str, np.ndarray]) -> bytes:
    """One serialized request for ``protocol``."""
    if protocol == "tfserving_rest":
        import json

        return json.dumps({"inputs": {n: a.tolist() for n, a in inputs.items()}}).encode()
    if protocol == "v2_rest":
        import json

        tensors = [
            {"name": n, "shape": list(a.shape), "datatype": "FP32", "data": a.reshape(-1).tolist()}
            for n, a in inputs.items()
        ]
        return json.dumps({"inputs": tensors}).encode()
    if protocol in ("swapserve", "echo"):
        from swapserve_client import tensors
        from swapserve_client._proto.swapserve.v1 import prediction_pb2

        request = prediction_pb2.PredictRequest(model_name=model)
        tensors.encode_map(inputs, request.inputs)
        return request.SerializeToString()
    if protocol == "tfserving":
        import tensorflow as tf
        from tensorflow_serving.apis import predict_pb2

        tf_request = predict_pb2.PredictRequest()
        tf_request.model_spec.name = model
        for name, array in inputs.items():
            tf_request.inputs[name].CopyFrom(tf.make_tensor_proto(array))
        return tf_request.SerializeToString()
    if protocol == "v2":
        from tritonclient.grpc import service_pb2

        v2_request = service_pb2.ModelInferRequest(model_name=model)
        for name, array in inputs.items():
            v2_request.inputs.add(
                name=name, datatype={"float32": "FP32"}[str(array.dtype)], shape=array.shape
            )
            v2_request.raw_input_contents.append(np.ascontiguousarray(array).tobytes())
        return v2_request.SerializeToString()
    raise ValueError(f"unknown protocol {protocol!r}")


def _version_of(protocol: str) -> Any:
    """A function reading the answering version from a response's bytes (0 if unknown)."""
    if protocol == "swapserve":
        from swapserve_client._proto.swapserve.v1 import prediction_pb2

        return lambda raw: prediction_pb2.PredictResponse.FromString(raw).version
    if protocol == "v2":
        from tritonclient.grpc import service_pb2

        return lambda raw: int(service_pb2.ModelInferResponse.FromString(raw).model_version or 0)
    return lambda raw: 0


@dataclass
class Load:
    """What to send, how hard and for how long."""

    target: str
    protocol: str
    payload: bytes
    clients: int = 1
    processes: int = 1
    duration: float = 5.0
    warmup: float = 1.0
    max_requests: int = 0  # 0: no cap besides the duration
    track_versions: bool = False
    model: str = "seed"  # HTTP paths name it


@dataclass
class Result:
    """Aggregated measurements of one load run."""

    requests: int
    errors: dict[str, int]
    seconds: float
    latencies: np.ndarray  # seconds, successful requests
    starts: np.ndarray  # seconds since the measured phase began, successful requests
    versions: np.ndarray  # answering version per successful request (0 if not tracked)
    client_cpu_seconds: float
    error_starts: np.ndarray = field(default_factory=lambda: np.zeros(0))
    extra: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """Throughput, percentiles (ms), errors and client CPU, JSON-ready."""
        ms = self.latencies * 1000 if len(self.latencies) else np.zeros(1)
        return {
            "requests": self.requests,
            "errors": sum(self.errors.values()),
            "error_codes": self.errors,
            "throughput_rps": round(self.requests / self.seconds, 1),
            "p50_ms": round(float(np.percentile(ms, 50)), 3),
            "p90_ms": round(float(np.percentile(ms, 90)), 3),
            "p99_ms": round(float(np.percentile(ms, 99)), 3),
            "p999_ms": round(float(np.percentile(ms, 99.9)), 3),
            "max_ms": round(float(ms.max()), 3),
            "client_cpu_percent": round(100 * self.client_cpu_seconds / self.seconds, 1),
        }


Send = Callable[[], Awaitable[tuple[bool, str, int]]]
"""One request: (answered OK, error code, answering version)."""


async def _run_process(load: Load, clients: int, begin: float, cap: int) -> dict[str, Any]:
    if load.protocol in HTTP_PATHS:
        return await _run_http(load, clients, begin, cap)
    path = PATHS[load.protocol]
    version_of = _version_of(load.protocol) if load.track_versions else None
    options = [("grpc.max_receive_message_length", 256 << 20)]
    async with grpc.aio.insecure_channel(load.target, options=options) as channel:
        call = channel.unary_unary(path)  # bytes in, bytes out: no client-side (de)serialization

        async def send() -> tuple[bool, str, int]:
            try:
                raw = await call(load.payload, timeout=30)
            except grpc.aio.AioRpcError as err:
                return False, err.code().name, 0
            return True, "", version_of(raw) if version_of else 0

        return await _closed_loop(load, clients, begin, cap, send)


async def _run_http(load: Load, clients: int, begin: float, cap: int) -> dict[str, Any]:
    """The same closed loop over HTTP/1.1 keep-alive connections (aiohttp), one per client."""
    import aiohttp

    url = f"http://{load.target}{HTTP_PATHS[load.protocol].format(model=load.model)}"
    headers = {"Content-Type": "application/json"}
    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def send() -> tuple[bool, str, int]:
            try:
                async with session.post(url, data=load.payload, headers=headers) as reply:
                    await reply.read()
                    version = int(reply.headers.get("X-Model-Version", "0") or 0)
                    return reply.status == 200, str(reply.status), version
            except aiohttp.ClientError as err:
                return False, type(err).__name__, 0

        return await _closed_loop(load, clients, begin, cap, send)


async def _closed_loop(
    load: Load, clients: int, begin: float, cap: int, send: Send
) -> dict[str, Any]:
    """``clients`` coroutines each sending the next request when the last returns; measured
    from ``begin + warmup`` for ``duration`` (and at most ``cap`` requests when set). A process
    that starts after ``begin`` (a slow spawn on a busy machine) counts from its own start, so
    it measures a whole window instead of none."""
    measure_from = max(begin, time.perf_counter()) + load.warmup
    stop_at = measure_from + load.duration
    starts: list[float] = []
    latencies: list[float] = []
    versions: list[int] = []
    error_starts: list[float] = []
    errors: Counter[str] = Counter()
    count = 0

    async def loop() -> None:
        nonlocal count
        while (t0 := time.perf_counter()) < stop_at and (not cap or count < cap):
            ok, code, version = await send()
            t1 = time.perf_counter()
            if t0 < measure_from:
                continue
            count += 1
            if ok:
                starts.append(t0 - measure_from)
                latencies.append(t1 - t0)
                versions.append(version)
            else:
                errors[code] += 1
                error_starts.append(t0 - measure_from)

    cpu0 = time.process_time()
    await asyncio.gather(*(loop() for _ in range(clients)))
    cpu = time.process_time() - cpu0
    return {
        "starts": starts,
        "latencies": latencies,
        "versions": versions,
        "errors": dict(errors),
        "error_starts": error_starts,
        "count": count,
        "cpu": cpu,
    }


def pooled(results: list[Result]) -> Result:
    """Several runs of the same load as one (latencies pooled, durations added)."""
    return Result(
        requests=sum(r.requests for r in results),
        errors=dict(sum((Counter(r.errors) for r in results), Counter())),
        seconds=sum(r.seconds for r in results),
        latencies=np.concatenate([r.latencies for r in results]),
        starts=np.concatenate([r.starts for r in results]),
        versions=np.concatenate([r.versions for r in results]),
        client_cpu_seconds=sum(r.client_cpu_seconds for r in results),
        error_starts=np.concatenate([r.error_starts for r in results]),
    )


def _process_main(load: Load, clients: int, begin: float, cap: int, conn: Any) -> None:
    conn.send(asyncio.run(_run_process(load, clients, begin, cap)))
    conn.close()


def run(load: Load) -> Result:
    """Runs the load and aggregates every process's measurements."""
    ctx = mp.get_context("spawn")
    shares = [
        load.clients // load.processes + (i < load.clients % load.processes)
        for i in range(load.processes)
    ]
    shares = [s for s in shares if s]
    begin = time.perf_counter() + 2.0  # lets every process start before the clock runs
    cap = -(-load.max_requests // len(shares)) if load.max_requests else 0
    pipes, procs = [], []
    for share in shares:
        parent, child = ctx.Pipe(duplex=False)
        proc = ctx.Process(target=_process_main, args=(load, share, begin, cap, child))
        proc.start()
        pipes.append(parent)
        procs.append(proc)
    parts = []
    for pipe, proc in zip(pipes, procs, strict=True):
        while not pipe.poll(0.5):
            if not proc.is_alive():
                raise RuntimeError(f"load process {proc.pid} died (exit code {proc.exitcode})")
        parts.append(pipe.recv())
    for proc in procs:
        proc.join()
    errors: Counter[str] = Counter()
    for part in parts:
        errors.update(part["errors"])
    order = np.argsort(np.concatenate([p["starts"] for p in parts]))
    return Result(
        requests=sum(p["count"] for p in parts),
        errors=dict(errors),
        seconds=load.duration,
        latencies=np.concatenate([p["latencies"] for p in parts])[order],
        starts=np.concatenate([p["starts"] for p in parts])[order],
        versions=np.concatenate([p["versions"] for p in parts])[order].astype(np.int64),
        client_cpu_seconds=sum(p["cpu"] for p in parts),
        error_starts=np.sort(np.concatenate([p["error_starts"] for p in parts])),
    )


@dataclass
class Alternation:
    """Per-target results of ``alternate``: latencies (seconds) and each block's median."""

    latencies: dict[str, np.ndarray]
    block_medians: dict[str, np.ndarray]
    errors: dict[str, int]
    seconds: float


def _alternate(
    conn: Any, *, targets: list[str], path: str, payload: bytes, duration: float, warmup: float,
    block: int,
) -> dict[str, Any]:  # fmt: skip
    # The blocking client: one request in flight at a time, and here it answers ~30% sooner
    # than grpc.aio's, whose extra latency would dilute the servers' difference.
    channels = [grpc.insecure_channel(t) for t in targets]
    calls = [c.unary_unary(path) for c in channels]
    latencies: list[list[float]] = [[] for _ in targets]
    medians: list[list[float]] = [[] for _ in targets]
    errors: Counter[str] = Counter()
    clock = time.perf_counter

    def rounds(n: int, keep: bool, first: int = 0) -> None:
        order = [*range(first, len(calls)), *range(first)]
        for _ in range(n):
            for i in order:
                call = calls[i]
                t0 = clock()
                try:
                    call(payload, timeout=30)
                except grpc.RpcError as err:
                    errors[f"{targets[i]} {err.code().name}"] += keep
                    continue
                if keep:
                    latencies[i].append(clock() - t0)

    try:
        end = clock() + warmup
        while clock() < end:
            rounds(block, keep=False)
        conn.send("measuring")  # the parent reads the servers' CPU counters now
        begin = clock()
        blocks = 0
        while clock() - begin < duration:
            sizes = [len(x) for x in latencies]
            # Each block starts the rotation at the next target: the first of a round measured
            # ~3% slower here, whichever server it was.
            rounds(block, keep=True, first=blocks % len(calls))
            blocks += 1
            for i, size in enumerate(sizes):
                if len(latencies[i]) > size:
                    medians[i].append(float(np.median(latencies[i][size:])))
        return {"latencies": latencies, "medians": medians, "errors": dict(errors),
                "seconds": clock() - begin}  # fmt: skip
    finally:
        for channel in channels:
            channel.close()


def _alternate_main(cpus: set[int] | None, conn: Any, plan: dict[str, Any]) -> None:
    if cpus:
        os.sched_setaffinity(0, cpus)
    conn.send(_alternate(conn, **plan))
    conn.close()


def alternate(
    targets: list[str],
    protocol: str,
    payload: bytes,
    *,
    duration: float,
    warmup: float = 1.0,
    block: int = 50,
    cpus: set[int] | None = None,
    on_measuring: Callable[[], None] = lambda: None,
) -> Alternation:
    """One client sending requests round-robin over ``targets`` (one in flight at a time), so
    every server is measured in the same milliseconds: this VM's speed drifts by tens of percent
    within minutes, which back-to-back runs attribute to whichever server ran in a slow spell.
    Each block of ``block`` rounds yields a median per target. Runs in its own process (pinned to
    ``cpus`` when given); ``on_measuring`` is called when the measured phase begins."""
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(
        target=_alternate_main,
        args=(
            cpus,
            child,
            {
                "targets": targets,
                "path": PATHS[protocol],
                "payload": payload,
                "duration": duration,
                "warmup": warmup,
                "block": block,
            },
        ),
    )
    proc.start()
    results: dict[str, Any] = {}
    while not results:
        while not parent.poll(0.5):
            if not proc.is_alive():
                raise RuntimeError(f"load process {proc.pid} died (exit code {proc.exitcode})")
        message = parent.recv()
        if message == "measuring":
            on_measuring()
        else:
            results = message
    proc.join()
    return Alternation(
        latencies={t: np.array(x) for t, x in zip(targets, results["latencies"], strict=True)},
        block_medians={t: np.array(x) for t, x in zip(targets, results["medians"], strict=True)},
        errors=results["errors"],
        seconds=results["seconds"],
    )


class EchoServer:
    """A bare Python gRPC server that returns each request's bytes: the transport floor."""

    def __init__(self, threads: int = 16) -> None:
        from concurrent import futures

        def echo(request: bytes, context: grpc.ServicerContext) -> bytes:
            return request

        handler = grpc.method_handlers_generic_handler(
            "bench.Echo", {"Echo": grpc.unary_unary_rpc_method_handler(echo)}
        )
        self.server = grpc.server(futures.ThreadPoolExecutor(threads))
        self.server.add_generic_rpc_handlers((handler,))
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()

    def stop(self) -> None:
        """Stops at once."""
        self.server.stop(0).wait()
