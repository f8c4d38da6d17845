"""Standard gRPC health checking and server reflection."""

from __future__ import annotations

import threading
from pathlib import Path

import grpc
import pytest
from google.protobuf.descriptor_pool import DescriptorPool
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

from helpers import HALF_PLUS_TWO, copy_version, serving
from swapserve.transport.grpc.health import LIVENESS
from swapserve.transport.grpc.server import SERVICES

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def test_health_follows_the_model(tmp_path: Path) -> None:
    root = tmp_path / "root"
    with serving(root, wait=False) as server:
        channel = grpc.insecure_channel(f"127.0.0.1:{server.port}")
        health = health_pb2_grpc.HealthStub(channel)

        def check(service: str = "") -> int:
            request = health_pb2.HealthCheckRequest(service=service)
            return health.Check(request, timeout=5).status  # type: ignore[no-any-return]

        assert check() == NOT_SERVING
        assert all(check(s) == NOT_SERVING for s in SERVICES)
        assert check(LIVENESS) == SERVING  # alive while waiting for a model: no restart loop

        seen: list[int] = []
        watch = health.Watch(health_pb2.HealthCheckRequest(service=""), timeout=60)

        def follow() -> None:
            for update in watch:
                seen.append(update.status)
                if update.status == SERVING:
                    return

        t = threading.Thread(target=follow)
        t.start()
        copy_version(HALF_PLUS_TWO, root, 1)
        t.join(60)
        assert seen[0] == NOT_SERVING and seen[-1] == SERVING
        assert all(check(s) == SERVING for s in ("", *SERVICES))
        with pytest.raises(grpc.RpcError) as exc:
            check("no.such.Service")
        assert exc.value.code() == grpc.StatusCode.NOT_FOUND

        assert server.grpc is not None
        server.grpc.health.shutdown()  # what SIGTERM does before the grace period
        assert check() == NOT_SERVING
        assert check(SERVICES[0]) == NOT_SERVING
        watch.cancel()
        channel.close()


def test_health_stays_serving_when_a_model_is_unloaded_on_request(tmp_path: Path) -> None:
    """As Triton's readiness: unloading a model on purpose does not pull the pod (a model that
    has not served yet does, see above); it serves again after a reload."""
    copy_version(HALF_PLUS_TWO, tmp_path, 1)
    with serving(tmp_path) as server:
        channel = grpc.insecure_channel(f"127.0.0.1:{server.port}")
        health = health_pb2_grpc.HealthStub(channel)
        request = health_pb2.HealthCheckRequest()
        assert health.Check(request, timeout=5).status == SERVING
        server.registry.get("m").unload()
        assert health.Check(request, timeout=5).status == SERVING
        assert server.registry.get("m").reload().version == 1
        assert health.Check(request, timeout=5).status == SERVING
        channel.close()


def test_reflection_lists_and_describes_every_service(tmp_path: Path) -> None:
    copy_version(HALF_PLUS_TWO, tmp_path, 1)
    with serving(tmp_path) as server:
        channel = grpc.insecure_channel(f"127.0.0.1:{server.port}")
        database = ProtoReflectionDescriptorDatabase(channel)
        services = set(database.get_services())
        assert services == {
            "swapserve.v1.PredictionService",
            "tensorflow.serving.PredictionService",
            "tensorflow.serving.ModelService",
            "inference.GRPCInferenceService",
            "grpc.health.v1.Health",
            "grpc.reflection.v1alpha.ServerReflection",
        }
        pool = DescriptorPool(database)
        predict = pool.FindServiceByName("swapserve.v1.PredictionService").methods_by_name[
            "Predict"
        ]
        assert predict.input_type.full_name == "swapserve.v1.PredictRequest"
        assert "output_filter" in predict.input_type.fields_by_name
        infer = pool.FindServiceByName("inference.GRPCInferenceService").methods_by_name[
            "ModelInfer"
        ]
        assert infer.output_type.fields_by_name["raw_output_contents"].number == 6
        classify = pool.FindServiceByName("tensorflow.serving.PredictionService").methods_by_name[
            "Classify"
        ]
        assert classify.input_type.full_name == "tensorflow.serving.ClassificationRequest"
        channel.close()
