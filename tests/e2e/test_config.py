"""Version policies, version labels, the config file, and reloading it without a restart."""

from __future__ import annotations

import shutil
import signal
import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import (
    model_management_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)
from tritonclient.grpc import service_pb2 as v2_pb2
from tritonclient.grpc import service_pb2_grpc as v2_pb2_grpc

from helpers import (
    BAD,
    HALF_PLUS_THREE,
    HALF_PLUS_TWO,
    ServerProcess,
    copy_version,
    estimator_version,
    serving,
    serving_settings,
    wait_for,
)
from swapserve.config.model_settings import VersionPolicy
from swapserve.config.settings import Settings
from swapserve.config.yaml_file import load_models
from swapserve_client import Client, SwapserveError

X = {"number": np.array([[1.0]], np.float32)}


def _weights(root: Path, *versions: int) -> None:
    """Estimator-style versions whose output is ``version * x``: answers name their version."""
    for v in versions:
        estimator_version(root, v, weight=float(v))


def _answer(client: Client, model: str = "m", **kw: object) -> tuple[int, float]:
    """(version, weight) of the version that answered; estimator_version computes 2 * w * x."""
    out = client.predict_full(model, X, **kw)  # type: ignore[arg-type]
    return out.version, float(out.outputs["output"][0, 0]) / 2


def _eventually(fn: Callable[[], object], expected: object, what: str) -> None:
    """Waits until ``fn()`` returns ``expected``; errors meanwhile count as not yet."""

    def check() -> bool:
        try:
            return fn() == expected
        except SwapserveError:
            return False

    wait_for(check, what=what)


def _code(client: Client, **kw: object) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(SwapserveError) as exc:
        client.predict_full("m", X, **kw)  # type: ignore[arg-type]
    return exc.value.code, exc.value.message


# ---- version policies ------------------------------------------------------------------------


def test_latest_n_serves_the_newest_n(tmp_path: Path) -> None:
    _weights(tmp_path, 1, 2, 3)
    with (
        serving(tmp_path, versions=VersionPolicy(latest=2), poll_seconds=0.1) as server,
        Client(f"127.0.0.1:{server.port}") as client,
    ):
        wait_for(lambda: server.registry.get("m").loaded_versions == (3, 2), what="3 and 2")
        assert _answer(client) == (3, 3.0)
        assert _answer(client, version=2) == (2, 2.0)
        code, message = _code(client, version=1)
        assert code == grpc.StatusCode.NOT_FOUND
        assert message == "version 1 of model 'm' is not loaded (loaded: [3, 2]; serving 3)"
        states = {v.version: v.state for v in client.status("m")}
        assert states == {3: "AVAILABLE", 2: "AVAILABLE", 1: "START"}
        # A new export: 4 and 3 serve, 2 is released.
        _weights(tmp_path, 4)
        wait_for(lambda: server.registry.get("m").loaded_versions == (4, 3), what="4 and 3")
        assert _answer(client) == (4, 4.0)
        assert _answer(client, version=3) == (3, 3.0)
        wait_for(lambda: {v.version: v.state for v in client.status("m")}[2] == "END")


def test_latest_n_skips_a_broken_newest_export(tmp_path: Path) -> None:
    _weights(tmp_path, 1, 2)
    shutil.copytree(BAD, tmp_path / "3")
    (tmp_path / "3" / "saved_model.pb").write_bytes(b"not a graph")
    with (
        serving(tmp_path, versions=VersionPolicy(latest=2), poll_seconds=0.1) as server,
        Client(f"127.0.0.1:{server.port}") as client,
    ):
        wait_for(lambda: server.registry.get("m").loaded_versions == (2, 1), what="2 and 1")
        assert _answer(client) == (2, 2.0)
        status = {v.version: v for v in client.status("m")}
        assert status[3].state == "FAILED" and status[3].error
        code, message = _code(client, version=3)
        assert code == grpc.StatusCode.NOT_FOUND
        assert "version 3 of model 'm' is not loaded: it failed to load" in message


def test_specific_versions_only(tmp_path: Path) -> None:
    _weights(tmp_path, 1, 2, 3)
    policy = VersionPolicy(specific=(1, 3))
    with (
        serving(tmp_path, versions=policy, poll_seconds=0.1) as server,
        Client(f"127.0.0.1:{server.port}") as client,
    ):
        wait_for(lambda: server.registry.get("m").loaded_versions == (3, 1), what="3 and 1")
        assert _answer(client) == (3, 3.0)
        assert _answer(client, version=1) == (1, 1.0)
        _weights(tmp_path, 4)  # not in the list: never loaded
        client.reload("m")
        assert server.registry.get("m").loaded_versions == (3, 1)
        assert _answer(client) == (3, 3.0)


def test_pin_under_latest_n_serves_only_the_pin(tmp_path: Path) -> None:
    _weights(tmp_path, 1, 2, 3)
    with (
        serving(tmp_path, versions=VersionPolicy(latest=2), poll_seconds=0.1) as server,
        Client(f"127.0.0.1:{server.port}") as client,
    ):
        manager = server.registry.get("m")
        wait_for(lambda: manager.loaded_versions == (3, 2))
        assert client.reload("m", 1).version == 1
        assert manager.loaded_versions == (1,)
        assert _answer(client) == (1, 1.0)
        client.reload("m")  # unpin: the policy again
        assert manager.loaded_versions == (3, 2)
        assert _answer(client) == (3, 3.0)


# ---- labels ----------------------------------------------------------------------------------


def test_labels_over_every_api(tmp_path: Path) -> None:
    _weights(tmp_path, 1, 2, 3)
    labels = {"stable": 1, "canary": 3}
    with (
        serving(tmp_path, labels=labels, poll_seconds=0.1) as server,
        Client(f"127.0.0.1:{server.port}") as client,
    ):
        # latest 1 serves 3; the stable label keeps 1 loaded too.
        wait_for(lambda: server.registry.get("m").loaded_versions == (3, 1), what="3 and 1")
        assert _answer(client, label="stable") == (1, 1.0)
        assert _answer(client, label="canary") == (3, 3.0)
        assert client.metadata("m", label="stable").version == 1
        status = client.model_status("m")
        assert status.labels == labels
        assert {v.version: v.labels for v in status.versions if v.labels} == {
            3: ("canary",),
            1: ("stable",),
        }
        code, message = _code(client, label="beta")
        assert code == grpc.StatusCode.INVALID_ARGUMENT
        assert message.startswith("Unrecognized servable version label: 'beta'")
        code, message = _code(client, version=1, label="stable")
        assert code == grpc.StatusCode.INVALID_ARGUMENT
        assert message == "give a version or a version label, not both"

        with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            tfs = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            request = predict_pb2.PredictRequest()
            request.model_spec.name = "m"
            request.model_spec.version_label = "stable"
            request.inputs["number"].CopyFrom(tf.make_tensor_proto(X["number"]))
            response = tfs.Predict(request, timeout=10)
            assert response.model_spec.version.value == 1
            assert tf.make_ndarray(response.outputs["output"]).item() == 2.0  # 2 * w * x

            v2 = v2_pb2_grpc.GRPCInferenceServiceStub(channel)
            infer = v2_pb2.ModelInferRequest(model_name="m", model_version="canary")
            infer.inputs.add(name="number", datatype="FP32", shape=[1, 1])
            infer.raw_input_contents.append(X["number"].tobytes())
            assert v2.ModelInfer(infer, timeout=10).model_version == "3"
            ready = v2.ModelReady(v2_pb2.ModelReadyRequest(name="m", version="stable"))
            assert ready.ready
            assert not v2.ModelReady(v2_pb2.ModelReadyRequest(name="m", version="2")).ready


def test_label_to_a_version_not_on_disk(tmp_path: Path) -> None:
    _weights(tmp_path, 1)
    with (
        serving(tmp_path, labels={"next": 9}, poll_seconds=0.1) as server,
        Client(f"127.0.0.1:{server.port}") as client,
    ):
        code, message = _code(client, label="next")
        assert code == grpc.StatusCode.NOT_FOUND
        assert message.startswith("version 9 (label 'next') of model 'm' is not loaded")
        _weights(tmp_path, 9)  # it appears: loaded because the label names it
        _eventually(lambda: _answer(client, label="next"), (9, 9.0), "label next to serve")


# ---- the config file -------------------------------------------------------------------------


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


# ---- reloading the config --------------------------------------------------------------------


def _config(path: Path, models: dict[str, tuple[Path, str]]) -> Path:
    lines = ["models:"]
    for name, (root, extra) in models.items():
        lines += [f"  - name: {name}", f"    export_root: {root}", "    poll_seconds: 0.1"]
        lines += [f"    {extra}"] if extra else []
    return _write(path, "\n".join(lines) + "\n")


def test_reload_config_rpc_rereads_the_file(tmp_path: Path) -> None:
    _weights(tmp_path / "a", 1, 2)
    copy_version(HALF_PLUS_TWO, tmp_path / "b", 1)
    config = _config(tmp_path / "c.yaml", {"a": (tmp_path / "a", "")})
    settings = Settings(models=load_models(config), config_path=config, host="127.0.0.1", port=0)
    with serving_settings(settings) as server, Client(f"127.0.0.1:{server.port}") as client:
        assert _answer(client, "a") == (2, 2.0)
        # Add b, label a's version 1, and re-read through TF Serving's config RPC (no config).
        _config(config, {"a": (tmp_path / "a", "labels: {stable: 1}"), "b": (tmp_path / "b", "")})
        with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = model_service_pb2_grpc.ModelServiceStub(channel)
            stub.HandleReloadConfigRequest(model_management_pb2.ReloadConfigRequest(), timeout=60)
            out = client.predict("b", {"x": np.float32([[2.0]])})
            assert out["y"].item() == 3.0  # b serves when the RPC returns
            assert _answer(client, "a", label="stable") == (1, 1.0)
            # An invalid file is refused whole, naming the key; nothing changes.
            _write(config, "models: [{name: a, export_root: /x, versions: {latest: x}}]")
            with pytest.raises(grpc.RpcError) as exc:
                stub.HandleReloadConfigRequest(
                    model_management_pb2.ReloadConfigRequest(), timeout=60
                )
            assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert "models[0].versions.latest: expected an integer" in exc.value.details()
        assert client.predict("b", {"x": np.float32([[2.0]])})["y"].item() == 3.0


def test_sighup_adds_and_removes_models_without_disturbing_others(tmp_path: Path) -> None:
    _weights(tmp_path / "a", 1)
    copy_version(HALF_PLUS_TWO, tmp_path / "b", 1)
    copy_version(HALF_PLUS_THREE, tmp_path / "c", 1)
    config = _config(tmp_path / "c.yaml", {"a": (tmp_path / "a", ""), "b": (tmp_path / "b", "")})
    server = ServerProcess("--config", str(config))
    try:
        target = f"127.0.0.1:{server.port}"
        with Client(target, timeout=30) as client:
            _eventually(lambda: _answer(client, "a"), (1, 1.0), "model a")
            # Model a under load the whole time; b goes, c comes.
            stop = threading.Event()
            outcomes: Counter[str] = Counter()

            def load() -> None:
                with Client(target, timeout=30) as c:
                    while not stop.is_set():
                        try:
                            outcomes["ok" if _answer(c, "a") == (1, 1.0) else "wrong"] += 1
                        except SwapserveError as err:
                            outcomes[err.code.name] += 1

            threads = [threading.Thread(target=load, daemon=True) for _ in range(4)]  # daemon: a
            # failing assertion must not leave the test process waiting on them
            for t in threads:
                t.start()
            _config(config, {"a": (tmp_path / "a", ""), "c": (tmp_path / "c", "")})
            server.proc.send_signal(signal.SIGHUP)
            wait_for(
                lambda: "config applied: added c; removed b" in server.log,
                what=f"the reload; server log:\n{server.log}",
            )

            def y_of_c() -> float:
                return float(client.predict("c", {"x": np.float32([[2.0]])})["y"].item())

            _eventually(y_of_c, 4.0, "model c")
            with pytest.raises(SwapserveError) as exc:
                client.predict("b", {"x": np.float32([[2.0]])})
            assert exc.value.code == grpc.StatusCode.NOT_FOUND
            # A broken file: logged, the running config stays.
            _write(config, "models: [{name: a}]")
            server.proc.send_signal(signal.SIGHUP)
            wait_for(lambda: "config reload failed" in server.log, what="the error in the log")
            assert "missing required key 'export_root'" in server.log
            assert client.predict("c", {"x": np.float32([[2.0]])})["y"].item() == 4.0
            stop.set()
            for t in threads:
                t.join()
        assert outcomes["ok"] > 0
        assert set(outcomes) == {"ok"}, outcomes
    finally:
        assert server.stop() == 0, server.log


def test_server_section_sets_the_rest_port_and_a_change_waits_for_a_restart(
    tmp_path: Path,
) -> None:
    import json
    import re
    import urllib.request

    copy_version(HALF_PLUS_TWO, tmp_path / "a", 1)
    config = _config(tmp_path / "c.yaml", {"a": (tmp_path / "a", "")})
    models = config.read_text()
    config.write_text(models + "server:\n  rest_port: 0\n")
    server = ServerProcess("--config", str(config))
    try:
        found = re.search(r"HTTP on 127\.0\.0\.1:(\d+)", server.log)
        assert found, server.log
        url = f"http://127.0.0.1:{found.group(1)}/v1/models/a:predict"
        with Client(f"127.0.0.1:{server.port}", timeout=30) as client:
            _eventually(lambda: client.metadata("a").version, 1, "model a")
        body = json.dumps({"instances": [1.0, 2.0, 5.0]}).encode()
        with urllib.request.urlopen(urllib.request.Request(url, body), timeout=30) as reply:
            assert json.loads(reply.read()) == {"predictions": [2.5, 3.0, 4.5]}
        config.write_text(models + "server:\n  rest_port: 8599\n")
        server.proc.send_signal(signal.SIGHUP)
        wait_for(
            lambda: "the server section changed; it applies at the next start" in server.log,
            what=f"the warning; server log:\n{server.log}",
        )
        with urllib.request.urlopen(urllib.request.Request(url, body), timeout=30) as reply:
            assert reply.status == 200  # still on the port it started with
    finally:
        assert server.stop() == 0
