"""Deadlines, concurrency limits and signals."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path
from typing import NoReturn

import grpc
import numpy as np
import pytest

from helpers import ServerProcess, estimator_version, servicer, wait_for
from swapserve.app import create_app
from swapserve.config.model_settings import ModelSettings, SessionSettings
from swapserve.config.settings import Settings
from swapserve.model.manager import ModelManager
from swapserve.transport.access import Access
from swapserve_client import Client, SwapserveError
from swapserve_client._proto.swapserve.v1 import prediction_pb2 as pb

X = {"number": np.ones([1, 1], np.float32)}


class ExpiredContext:
    code: grpc.StatusCode | None = None

    def time_remaining(self) -> float:
        return -0.5

    def peer(self) -> str:
        return "ipv4:127.0.0.1:1"

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return ()

    def abort(self, code: grpc.StatusCode, details: str) -> NoReturn:
        self.code, self.details = code, details
        raise RuntimeError("aborted")


def test_expired_deadline_is_not_run(tmp_path: Path) -> None:
    manager = ModelManager(ModelSettings("m", tmp_path), SessionSettings())
    context = ExpiredContext()
    with pytest.raises(RuntimeError):
        servicer(manager, Access(None, None)).Predict(pb.PredictRequest(model_name="m"), context)  # type: ignore[arg-type]
    assert context.code == grpc.StatusCode.DEADLINE_EXCEEDED
    assert context.details == "the request's deadline passed before it could run"


def test_concurrency_limit_answers_resource_exhausted(tmp_path: Path) -> None:
    estimator_version(tmp_path, 1, weight=1.0)
    settings = Settings(
        models=(ModelSettings("m", tmp_path, poll_seconds=600, reload_settle_seconds=3.0),),
        host="127.0.0.1", port=0, max_concurrent_rpcs=1,
    )  # fmt: skip
    server = create_app(settings)
    server.start()
    try:
        target = f"127.0.0.1:{server.port}"
        with Client(target, timeout=30) as client:
            wait_for(lambda: client.status("m") and client.status("m")[0].state == "AVAILABLE")
            estimator_version(tmp_path, 2, weight=2.0)  # Reload will settle it for ~3 s
            slow = threading.Thread(target=client.reload, args=("m",))
            slow.start()
            manager = server.registry.get("m")
            wait_for(manager._load_lock.locked, what="the Reload to be in flight")
            with pytest.raises(SwapserveError) as exc:
                client.predict("m", X)
            assert exc.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED
            slow.join()
            assert client.predict_full("m", X).version == 2
    finally:
        server.stop(grace=5)


def test_second_signal_exits_at_once(tmp_path: Path) -> None:
    estimator_version(tmp_path, 1, weight=1.0)
    server = ServerProcess(
        "--model-name", "m", "--export-root", str(tmp_path), "--poll-seconds", "600",
        "--reload-settle-seconds", "5", "--grace-seconds", "30",
    )  # fmt: skip
    try:
        wait_for(lambda: "serving (loaded in" in server.log, timeout=60)
        estimator_version(tmp_path, 2, weight=2.0)
        client = Client(f"127.0.0.1:{server.port}", timeout=60)
        failures: list[BaseException] = []

        def in_flight_reload() -> None:
            try:
                client.reload("m")
            except SwapserveError as err:  # the server went away under it, as intended
                failures.append(err)

        reload = threading.Thread(target=in_flight_reload)
        reload.start()
        time.sleep(0.5)  # the Reload is in flight, waiting out its settle period
        start = time.monotonic()
        server.proc.send_signal(signal.SIGTERM)
        wait_for(lambda: "shutting down" in server.log, timeout=10)
        server.proc.send_signal(signal.SIGTERM)
        code = server.proc.wait(10)
        assert time.monotonic() - start < 4  # not the 5 s the in-flight Reload still needs
        assert code == 1
        assert "again; exiting at once" in server.log
        reload.join(10)
        assert failures
        client.close()
    finally:
        server.stop()


def test_max_request_elements_on_every_protocol(tmp_path: Path) -> None:
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc
    from tritonclient.grpc import service_pb2 as v2_pb2
    from tritonclient.grpc import service_pb2_grpc as v2_pb2_grpc

    from helpers import serving

    estimator_version(tmp_path, 1, weight=1.0)
    with serving(tmp_path, max_request_elements=4) as server:
        target = f"127.0.0.1:{server.port}"
        message = "the request has 5 input elements; model 'm' accepts at most 4 per request"
        with Client(target) as client:
            out = client.predict("m", {"number": np.ones([4, 1], np.float32)})  # at the limit
            assert out["output"].shape == (4, 1)
            with pytest.raises(SwapserveError) as exc:
                client.predict("m", {"number": np.ones([5, 1], np.float32)})
            assert exc.value.code == grpc.StatusCode.INVALID_ARGUMENT
            assert exc.value.message.startswith(message)
        with grpc.insecure_channel(target) as channel:
            request = predict_pb2.PredictRequest()
            request.model_spec.name = "m"
            request.inputs["number"].CopyFrom(tf.make_tensor_proto(np.ones([5, 1], np.float32)))
            with pytest.raises(grpc.RpcError) as rpc:
                prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(request)
            assert rpc.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert rpc.value.details().startswith(message)
            infer = v2_pb2.ModelInferRequest(model_name="m")
            infer.inputs.add(name="number", datatype="FP32", shape=[5, 1])
            infer.raw_input_contents.append(np.ones([5, 1], np.float32).tobytes())
            with pytest.raises(grpc.RpcError) as rpc:
                v2_pb2_grpc.GRPCInferenceServiceStub(channel).ModelInfer(infer)
            assert rpc.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert rpc.value.details().startswith(message)
