"""Single-client Predict latency of the seed model through each protocol on one server.

One ``swapserve`` process; one closed-loop Python client at a time, each through its own
library: ``swapserve_client.Client.predict``, TF Serving's ``PredictionServiceStub.Predict`` (+
``tf.make_ndarray``), and ``tritonclient.grpc``'s ``infer`` (+ ``as_numpy``). Writes
``docs/benchmarks/protocols.{json,md}``.

    .venv/bin/python bench/protocols.py            # or: make bench
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import tensorflow as tf
import tritonclient.grpc as triton
from common import REPO, export_versions, percentiles, start_server, wait_serving
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from swapserve_client import Client

OUT = REPO / "docs" / "benchmarks"
log = logging.getLogger("bench")
X = np.array([[100.0]], np.float32)


def measure(call: Callable[[], np.ndarray], requests: int, warmup: int) -> dict[str, Any]:
    for _ in range(warmup):
        call()
    latencies = []
    for _ in range(requests):
        t0 = time.perf_counter()
        y = call()
        latencies.append(time.perf_counter() - t0)
    assert abs(float(y.reshape(-1)[0]) - 200.0) < 0.01, y
    return {"requests": requests, **percentiles(latencies)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--warmup", type=int, default=300)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        root, staging = Path(tmp) / "root", Path(tmp) / "staging"
        root.mkdir()
        export_versions(root, staging)
        proc, port = start_server(root)
        target = f"127.0.0.1:{port}"
        try:
            wait_serving(target)
            with Client(target) as client:
                results["swapserve.v1 (swapserve_client)"] = measure(
                    lambda: client.predict("seed", {"number": X})["output"],
                    args.requests,
                    args.warmup,
                )
            with grpc.insecure_channel(target) as channel:
                stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
                request = predict_pb2.PredictRequest()
                request.model_spec.name = "seed"
                request.inputs["number"].CopyFrom(tf.make_tensor_proto(X))
                results["TF Serving API (tensorflow-serving-api)"] = measure(
                    lambda: tf.make_ndarray(stub.Predict(request, timeout=10).outputs["output"]),
                    args.requests,
                    args.warmup,
                )
            v2 = triton.InferenceServerClient(target)
            inp = triton.InferInput("number", [1, 1], "FP32")
            inp.set_data_from_numpy(X)
            results["KServe V2 (tritonclient.grpc)"] = measure(
                lambda: v2.infer("seed", [inp]).as_numpy("output"), args.requests, args.warmup
            )
            v2.close()
        finally:
            proc.terminate()
            proc.wait(30)

    report = {"benchmark": "protocols", "cpus": os.cpu_count(), "results": results}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "protocols.json").write_text(json.dumps(report, indent=2) + "\n")
    rows = ["| protocol (client) | requests | p50 ms | p90 ms | p99 ms |", "|---|---|---|---|---|"]
    for name, r in results.items():
        rows.append(f"| {name} | {r['requests']} | {r['p50_ms']} | {r['p90_ms']} | {r['p99_ms']} |")
    md = "\n".join(
        [
            "# Predict latency by protocol",
            "",
            "Seed model, one closed-loop Python client at a time on the same "
            f"{os.cpu_count()}-core machine as the `swapserve` process, one `[[100.0]]` float32 "
            "request per call. "
            "Regenerate with `make bench` (`bench/protocols.py`).",
            "",
            *rows,
            "",
        ]
    )
    (args.out / "protocols.md").write_text(md)
    log.info("%s", md)


if __name__ == "__main__":
    main()
