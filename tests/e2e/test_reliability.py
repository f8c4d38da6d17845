"""Defects found by trying to break the server (issue 12), each with load running through the
event: out-of-range version directories, symlink cycles, Reload storms, SIGTERM, silent sockets."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
import tritonclient.grpc as triton
from google.protobuf import wrappers_pb2
from hypothesis import given
from hypothesis import strategies as st
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)
from tritonclient.utils import InferenceServerException

from helpers import (
    HALF_PLUS_TWO,
    CallLoad,
    ServerProcess,
    copy_version,
    graph_version,
    scrape,
    serving_process,
    value,
    wait_for,
)
from swapserve.model.records import State
from swapserve_client import Client, SwapserveError

MAX = 2**63 - 1
X = {"x": np.array([[1.0]], np.float32)}


class Protocols:
    """Every protocol's status, metadata and predict calls against one model, by version."""

    def __init__(self, port: int, model: str = "m") -> None:
        self.target = f"127.0.0.1:{port}"
        self.model = model
        self.client = Client(self.target, timeout=30)
        self.channel = grpc.insecure_channel(self.target)
        self.tfs_predict = prediction_service_pb2_grpc.PredictionServiceStub(self.channel)
        self.tfs_model = model_service_pb2_grpc.ModelServiceStub(self.channel)
        self.triton = triton.InferenceServerClient(self.target)

    def close(self) -> None:
        self.client.close()
        self.channel.close()
        self.triton.close()

    def calls(self, version: int = 0) -> list[Callable[[], Any]]:
        """One predict, status and metadata call per protocol (``version`` 0: the served one)."""
        return [
            lambda: self.client.predict(self.model, X, version=version),
            lambda: self.client.model_status(self.model),
            lambda: self.client.metadata(self.model, version=version),
            lambda: self.tfs_predict.Predict(self._tfs_predict(version), timeout=30),
            lambda: self.tfs_model.GetModelStatus(self._tfs_status(version), timeout=30),
            lambda: self.tfs_predict.GetModelMetadata(self._tfs_metadata(version), timeout=30),
            lambda: self._v2_infer(version),
            lambda: self.triton.get_model_metadata(self.model, str(version or "")),
            self.triton.get_model_repository_index,
        ]

    def _spec(self, message: Any, version: int) -> Any:
        message.model_spec.name = self.model
        if version:
            message.model_spec.version.CopyFrom(wrappers_pb2.Int64Value(value=version))
        return message

    def _tfs_predict(self, version: int) -> predict_pb2.PredictRequest:
        request = self._spec(predict_pb2.PredictRequest(), version)
        request.inputs["x"].dtype = 1  # DT_FLOAT
        request.inputs["x"].tensor_shape.dim.add(size=1)
        request.inputs["x"].tensor_shape.dim.add(size=1)
        request.inputs["x"].float_val.append(1.0)
        return request

    def _tfs_status(self, version: int) -> get_model_status_pb2.GetModelStatusRequest:
        return self._spec(get_model_status_pb2.GetModelStatusRequest(), version)

    def _tfs_metadata(self, version: int) -> get_model_metadata_pb2.GetModelMetadataRequest:
        request = self._spec(get_model_metadata_pb2.GetModelMetadataRequest(), version)
        request.metadata_field.append("signature_def")
        return request

    def _v2_infer(self, version: int) -> None:
        tensor = triton.InferInput("x", [1, 1], "FP32")
        tensor.set_data_from_numpy(np.array([[1.0]], np.float32))
        result = self.triton.infer(self.model, [tensor], model_version=str(version or ""))
        assert result.as_numpy("y").tolist() == [[2.5]]


def _served(protocols: Protocols) -> int:
    return protocols.client.model_status("m").serving_version


# ---- 1. versions beyond int64 -------------------------------------------------------------------


def test_version_directories_beyond_int64_are_never_candidates(tmp_path: Path) -> None:
    """Before: 99999999999999999999 was loaded and swapped in, then every Predict and
    GetModelStatus answered INTERNAL ("Value out of range")."""
    root = tmp_path / "root"
    copy_version(HALF_PLUS_TWO, root, 123)
    with serving_process(root, "m", "--poll-seconds", "0.05") as server:
        protocols = Protocols(server.port)
        try:
            with CallLoad(protocols.calls(), threads=4) as load:
                load.wait_for_answers(20)
                for name in (str(MAX + 1), "99999999999999999999", "0" * 3 + str(MAX + 1)):
                    copy_version(HALF_PLUS_TWO, root, name)  # type: ignore[arg-type]
                time.sleep(0.5)  # ten polls
                load.wait_for_answers(20)
                assert _served(protocols) == 123
                assert [v.version for v in protocols.client.status("m")] == [123]
                # The largest version every API carries loads, serves and is reported by each.
                copy_version(HALF_PLUS_TWO, root, MAX)
                wait_for(lambda: _served(protocols) == MAX, what="version 2^63-1 to serve")
                load.wait_for_answers(20)
            assert load.errors == [], sorted(set(load.errors))[:5]
            with CallLoad(protocols.calls(MAX), threads=2) as by_number:
                by_number.wait_for_answers(30)
            assert by_number.errors == [], sorted(set(by_number.errors))[:5]
            status = protocols.tfs_model.GetModelStatus(protocols._tfs_status(0), timeout=30)
            states = {s.version: s.state for s in status.model_version_status}
            assert states[MAX] == get_model_status_pb2.ModelVersionStatus.AVAILABLE, states
            assert protocols.triton.get_model_metadata("m").versions == [str(MAX)]
            # A request naming a version beyond int64 (V2 carries it as text) is refused clearly.
            with pytest.raises(InferenceServerException) as refused:
                protocols.triton.get_model_metadata("m", str(MAX + 1))
            assert refused.value.status() == "StatusCode.INVALID_ARGUMENT"
            assert "version must be from 0" in refused.value.message()
        finally:
            protocols.close()
    skipped = [line for line in server.lines if "version numbers go up to" in line]
    assert len(skipped) == 3, skipped  # once per name, not once per poll


# ---- 2. a symlink cycle inside one version ------------------------------------------------------


def test_a_symlink_cycle_fails_only_its_version(tmp_path: Path) -> None:
    """Before: the cycle made the whole listing fail; newer versions were never picked up,
    Reload answered OK with the stale version and storage_error stayed empty."""
    root = tmp_path / "root"
    copy_version(HALF_PLUS_TWO, root, 1)
    with serving_process(root, "m", "--poll-seconds", "0.05") as server:
        protocols = Protocols(server.port)
        try:
            with CallLoad(protocols.calls(), threads=4) as load:
                load.wait_for_answers(20)
                staging = tmp_path / "staging"
                copy_version(HALF_PLUS_TWO, staging, 2)
                (staging / "2" / "a").symlink_to("b")
                (staging / "2" / "b").symlink_to("a")
                os.rename(staging / "2", root / "2")
                copy_version(HALF_PLUS_TWO, root, 3)
                result = protocols.client.reload("m")  # the scan goes on past version 2
                assert result.version == 3
                failed = next(v for v in protocols.client.status("m") if v.version == 2)
                assert failed.state == "FAILED" and "a: symlink to b does not resolve" in (
                    failed.error
                ), failed
                assert protocols.client.model_status("m").storage_error == ""
                # Pinning the broken version is refused with its reason; 3 keeps serving.
                with pytest.raises(SwapserveError, match="symlink to b does not resolve") as err:
                    protocols.client.reload("m", 2)
                assert err.value.code == grpc.StatusCode.FAILED_PRECONDITION
                # Repaired: its files changed, so it is retried (and pinning it now works).
                (root / "2" / "a").unlink()
                (root / "2" / "b").unlink()
                assert protocols.client.reload("m", 2).version == 2
                assert protocols.client.reload("m").version == 3
                load.wait_for_answers(20)
            assert load.errors == [], sorted(set(load.errors))[:5]
        finally:
            protocols.close()


def test_reload_fails_while_the_export_root_cannot_be_listed(tmp_path: Path) -> None:
    """A fault that blocks the whole scan shows in status, metrics and Reload's answer."""
    root = tmp_path / "root"
    copy_version(HALF_PLUS_TWO, root, 1)
    with serving_process(root, "m", "--poll-seconds", "0.05", "--metrics-port", "0") as server:
        protocols = Protocols(server.port)
        try:
            with CallLoad(protocols.calls(), threads=2) as load:
                load.wait_for_answers(20)
                os.rename(root, tmp_path / "away")
                root.write_text("a file where the export root was: it cannot be listed")
                status = wait_for(
                    lambda: (s := protocols.client.model_status("m")).storage_error and s,
                    what="the storage error",
                )
                assert "cannot list export root" in status.storage_error
                with pytest.raises(SwapserveError, match="could not scan the export root") as err:
                    protocols.client.reload("m")
                assert err.value.code == grpc.StatusCode.UNAVAILABLE
                assert "version 1 keeps serving" in err.value.message
                errors = value(
                    scrape(server.metrics_port), "swapserve_storage_errors_total", model="m"
                )
                assert errors >= 1
                root.unlink()
                os.rename(tmp_path / "away", root)
                copy_version(HALF_PLUS_TWO, root, 2)
                assert protocols.client.reload("m").version == 2
                assert protocols.client.model_status("m").storage_error == ""
                load.wait_for_answers(20)
            assert load.errors == [], sorted(set(load.errors))[:5]
        finally:
            protocols.close()


@given(
    st.lists(st.integers(1, MAX), min_size=1, max_size=5, unique=True),
    st.sampled_from(list(State)),
)
def test_every_protocols_encoders_take_any_version_the_manager_can_hold(
    versions: list[int], state: State
) -> None:
    from tritonclient.grpc import service_pb2

    from swapserve.codecs import kserve_v2, swapserve_v1, tfserving
    from swapserve.dataplane.requests import IndexEntry
    from swapserve.model.records import ModelStatus, VersionStatus

    statuses = tuple(
        VersionStatus(v, state, "", v == versions[0], 0.1, 1.0, ("stable",)) for v in versions
    )
    status = ModelStatus(statuses, versions[0], versions[-1], {"stable": versions[0]})
    assert swapserve_v1.status_response("m", status).serving_version == versions[0]
    assert swapserve_v1.metadata_response("m", versions[0], {}).version == versions[0]
    assert len(tfserving.status_response(statuses).model_version_status) == len(versions)
    assert tfserving.metadata_response("m", versions[0], {}).model_spec.version.value == versions[0]
    row = service_pb2.RepositoryIndexResponse.ModelIndex()
    kserve_v2.index_entry(IndexEntry("m", statuses[0]), row)
    assert int(row.version) == versions[0]
    assert kserve_v2.parse_version(row.version) == (versions[0], "")


# ---- 3. Reload storms ---------------------------------------------------------------------------


def test_a_reload_storm_answers_every_reload_correctly_while_predictions_flow(
    tmp_path: Path,
) -> None:
    """20 Reload loops (5 pinning the older version) through 8 predicting threads: every
    prediction is answered, every Reload answers with the version it must serve or is refused
    at once with RESOURCE_EXHAUSTED (past --max-admin-rpcs); figures are in `make bench`."""
    import threading

    root = tmp_path / "root"
    copy_version(HALF_PLUS_TWO, root, 1)
    copy_version(HALF_PLUS_TWO, root, 2)
    answers: dict[str, int] = {}
    lock = threading.Lock()  # guards answers
    stop = threading.Event()

    def reload_loop(target: str, pin: int) -> None:
        with Client(target, timeout=60) as client:
            while not stop.is_set():
                try:
                    result = client.reload("m", pin)
                    key = "ok" if result.version == (pin or 2) else f"wrong: {result}"
                except SwapserveError as err:
                    key = err.code.name
                    stop.wait(0.05)
                with lock:
                    answers[key] = answers.get(key, 0) + 1

    flags = ("--poll-seconds", "0.05", "--reload-settle-seconds", "0")
    with serving_process(root, "m", *flags) as server:
        protocols = Protocols(server.port)
        target = protocols.target
        try:
            with CallLoad([lambda: protocols.client.predict("m", X)], threads=8) as load:
                load.wait_for_answers(50)
                loops = [
                    threading.Thread(target=reload_loop, args=(target, 1 if i < 5 else 0))
                    for i in range(20)
                ]
                for t in loops:
                    t.start()
                wait_for(lambda: answers.get("ok", 0) >= 40, timeout=60, what="40 reloads")
                load.wait_for_answers(200)
                stop.set()
                for t in loops:
                    t.join()
                load.wait_for_answers(50)
            assert load.errors == [], sorted(set(load.errors))[:5]
            assert set(answers) <= {"ok", "RESOURCE_EXHAUSTED"}, answers
            assert protocols.client.reload("m").version == 2  # nothing left pinned or stuck
        finally:
            protocols.close()


def test_reloads_stuck_behind_a_slow_load_never_take_a_predictions_thread(
    tmp_path: Path,
) -> None:
    """Before: each waiting Reload held one of the 16 gRPC threads, so 20 Reloads behind one
    slow load left no thread for Predict (it timed out). Now admin calls have threads of their
    own, bounded by --max-admin-rpcs, and the rest are refused at once."""
    from concurrent.futures import ThreadPoolExecutor

    root = tmp_path / "root"
    root.mkdir()
    graph_version(root, 1)
    flags = ("--poll-seconds", "600", "--reload-settle-seconds", "0")
    with serving_process(root, "m", *flags) as server:
        fifo = tmp_path / "load-gate"
        graph_version(root, 2, blocking_on=fifo)  # its load waits for a reader on the pipe
        protocols = Protocols(server.port)
        try:
            with ThreadPoolExecutor(20) as pool:
                reloads = [pool.submit(protocols.client.reload, "m") for _ in range(20)]
                wait_for(lambda: "loading version 2" in server.log, what="version 2 to load")
                time.sleep(0.5)  # every Reload has arrived
                for call in protocols.calls():  # every protocol still answers at once
                    call()
                assert fifo.read_text() == "loaded"  # the load goes on
                outcomes = []
                for future in reloads:
                    try:
                        outcomes.append(future.result(60).version)
                    except SwapserveError as err:
                        outcomes.append(err.code.name)
            assert set(outcomes) == {2, "RESOURCE_EXHAUSTED"}, outcomes
            assert outcomes.count(2) <= 4  # --max-admin-rpcs
        finally:
            protocols.close()


# ---- 4. SIGTERM under load ----------------------------------------------------------------------


@pytest.mark.parametrize("shape", ["one process", "three models", "two workers"])
def test_sigterm_under_load_answers_ok_or_unavailable_and_exits_when_done(
    tmp_path: Path, shape: str
) -> None:
    """Before: 1-7 requests per run ended CANCELLED (gRPC's shutdown cancels calls that arrived
    but were not yet picked up), and with three models the server waited out the whole grace.
    Now: NOT_SERVING at once, serving on through --drain-seconds, then UNAVAILABLE, exit as soon
    as the accepted calls are done (well before --grace-seconds)."""
    import subprocess

    from grpc_health.v1 import health_pb2, health_pb2_grpc

    names = ["m", "m2", "m3"] if shape == "three models" else ["m"]
    for name in names:
        copy_version(HALF_PLUS_TWO, tmp_path / name, 1)
    config = tmp_path / "c.yaml"
    config.write_text(
        "models:\n" + "".join(f"  - name: {n}\n    export_root: {tmp_path / n}\n" for n in names)
    )
    drain = 2.0
    args = ["--config", str(config), "--drain-seconds", str(drain), "--grace-seconds", "30"]
    if shape == "two workers":
        args += ["--workers", "2"]
    server = ServerProcess(*args)
    protocols = Protocols(server.port)
    health = health_pb2_grpc.HealthStub(protocols.channel)
    try:
        wait_for(lambda: _ready(protocols, names), timeout=120, what="every model to serve")
        with CallLoad(protocols.calls(), threads=8) as load:
            load.wait_for_answers(100)
            signalled = time.monotonic()
            server.proc.send_signal(15)
            time.sleep(0.5)
            check = health.Check(health_pb2.HealthCheckRequest(service=""), timeout=10)
            assert check.status == health_pb2.HealthCheckResponse.NOT_SERVING
            load.wait_for_answers(100)  # still serving during the drain
            assert time.monotonic() - signalled < drain, "the drain ended before answers came"
            try:
                code = server.proc.wait(60)
            except subprocess.TimeoutExpired:
                pytest.fail(f"no exit within 60 s\n{server.log}")
            exit_seconds = time.monotonic() - signalled
            time.sleep(0.5)  # the load goes on past the exit
        assert code == 0, server.log
        refused = [e for e in load.errors if not e.startswith("UNAVAILABLE")]
        assert refused == [], sorted(set(refused))[:5]
        assert exit_seconds < drain + 5, exit_seconds  # not the 30 s grace
    finally:
        protocols.close()
        server.stop()


def _ready(protocols: Protocols, names: list[str]) -> bool:
    try:
        return all(protocols.client.model_status(n).serving_version for n in names)
    except SwapserveError:
        return False


# ---- 5. silent sockets --------------------------------------------------------------------------


def test_silent_and_idle_connections_are_closed_while_predictions_go_on(tmp_path: Path) -> None:
    """Before: 500 raw TCP connections that never sent the HTTP/2 preface stayed open forever
    (fds 9 -> 509). Now the handshake deadline closes them, and an HTTP/2 connection that went
    quiet is sent GOAWAY after --max-connection-idle-seconds."""
    import socket

    copy_version(HALF_PLUS_TWO, tmp_path / "m", 1)
    server = ServerProcess(
        "--model-name", "m", "--export-root", str(tmp_path / "m"),
        "--handshake-timeout-seconds", "1", "--max-connection-idle-seconds", "1",
    )  # fmt: skip
    protocols = Protocols(server.port)

    def fds() -> int:
        return len(os.listdir(f"/proc/{server.proc.pid}/fd"))

    try:
        wait_for(lambda: _ready(protocols, ["m"]), timeout=60, what="the model to serve")
        with CallLoad(protocols.calls()[:1], threads=2) as load:
            load.wait_for_answers(20)
            baseline = fds()
            silent = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(200)]
            wait_for(lambda: fds() >= baseline + 150, timeout=10, what="the server to accept")
            # Past the handshake deadline the server closes every one; predictions go on.
            wait_for(lambda: fds() <= baseline + 5, timeout=15, what="silent sockets closed")
            load.wait_for_answers(20)
            for sock in silent:
                sock.settimeout(5)
                while sock.recv(4096):  # the server's SETTINGS, maybe a GOAWAY, then the close
                    pass
                sock.close()
            # A connection that completed the HTTP/2 preface, then went quiet.
            quiet = socket.create_connection(("127.0.0.1", server.port))
            quiet.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0]))
            quiet.settimeout(10)
            received = b""
            while chunk := quiet.recv(4096):  # SETTINGS, ..., GOAWAY, then the close
                received += chunk
            assert 7 in _frame_types(received)  # GOAWAY came before the close
            quiet.close()
            load.wait_for_answers(20)
        assert load.errors == [], sorted(set(load.errors))[:5]
    finally:
        protocols.close()
        server.stop()


def _frame_types(data: bytes) -> list[int]:
    """The types of the HTTP/2 frames in ``data`` (9-byte headers: length, type, flags, id)."""
    types, at = [], 0
    while at + 9 <= len(data):
        length = int.from_bytes(data[at : at + 3], "big")
        types.append(data[at + 3])
        at += 9 + length
    return types


# ---- smaller: undecodable requests ---------------------------------------------------------------


def test_undecodable_requests_log_one_line_not_a_traceback_each(tmp_path: Path) -> None:

    copy_version(HALF_PLUS_TWO, tmp_path / "m", 1)
    server = ServerProcess("--model-name", "m", "--export-root", str(tmp_path / "m"))
    try:
        with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            predict = channel.unary_unary("/swapserve.v1.PredictionService/Predict")
            for _ in range(200):
                with pytest.raises(grpc.RpcError) as err:
                    predict(b"\xff\xff\xff garbage", timeout=10)
                assert err.value.code() == grpc.StatusCode.INTERNAL
            protocols = Protocols(server.port)
            try:
                protocols.client.model_status("m")  # still answering
            finally:
                protocols.close()
    finally:
        assert server.stop() == 0
    assert server.log.count("could not deserialize a request") == 1, server.log[-2000:]
    assert "Traceback" not in server.log
