"""--otel: spans exported over real OTLP/gRPC to a receiver built from opentelemetry-proto."""

from __future__ import annotations

import threading
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from helpers import estimator_version, serving_settings, wait_for
from swapserve.config.model_settings import ModelSettings
from swapserve.config.settings import Settings
from swapserve_client import Client, SwapserveError


class Receiver(trace_service_pb2_grpc.TraceServiceServicer):
    """An OTLP trace receiver that keeps every span it is sent."""

    def __init__(self) -> None:
        self.spans: list[Any] = []
        self._lock = threading.Lock()

    def Export(  # noqa: N802 (gRPC method name)
        self, request: trace_service_pb2.ExportTraceServiceRequest, context: grpc.ServicerContext
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        with self._lock:
            for resource in request.resource_spans:
                for scope in resource.scope_spans:
                    self.spans.extend(scope.spans)
        return trace_service_pb2.ExportTraceServiceResponse()


def _attributes(span: Any) -> dict[str, Any]:
    out = {}
    for kv in span.attributes:
        value = kv.value
        out[kv.key] = getattr(value, value.WhichOneof("value"))
    return out


def test_otel_exports_a_span_per_rpc(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    receiver = Receiver()
    collector = grpc.server(futures.ThreadPoolExecutor(4))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(receiver, collector)
    port = collector.add_insecure_port("127.0.0.1:0")
    collector.start()
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_INSECURE", "true")
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "50")
    estimator_version(tmp_path, 1, weight=1.0)
    settings = Settings(models=(ModelSettings("m", tmp_path),), host="127.0.0.1", port=0, otel=True)
    try:
        with serving_settings(settings) as server:
            target = f"127.0.0.1:{server.port}"
            with Client(target) as client:
                client.predict("m", {"number": np.ones([1, 1], np.float32)})
                with pytest.raises(SwapserveError):
                    client.predict("m", {"wrong": np.ones([1, 1], np.float32)})
            with grpc.insecure_channel(target) as channel:
                health = health_pb2_grpc.HealthStub(channel)
                health.Check(health_pb2.HealthCheckRequest(service=""), timeout=10)
            wait_for(lambda: len(receiver.spans) >= 2, what="two spans at the receiver")
        spans = {(s.name, _attributes(s)["rpc.grpc.status_code"]): s for s in receiver.spans}
        ok = spans[("/swapserve.v1.PredictionService/Predict", 0)]
        bad = spans[("/swapserve.v1.PredictionService/Predict", 3)]  # INVALID_ARGUMENT
        assert _attributes(ok)["swapserve.model"] == "m"
        assert _attributes(bad)["swapserve.model"] == "m"
        assert not any("grpc.health" in s.name for s in receiver.spans)
    finally:
        collector.stop(0)
