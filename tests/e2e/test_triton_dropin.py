"""Triton's own command line given to `tritonserver` (ours), with tritonclient unchanged."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc as triton_grpc
import tritonclient.http as triton_http
from tritonclient.utils import InferenceServerException

from helpers import HALF_PLUS_THREE, HALF_PLUS_TWO, ServerProcess, wait_for

PROGRAM = str(Path(sys.executable).parent / "tritonserver")


_HP3_TENSORS = (
    'input [ { name: "x" data_type: TYPE_FP32 dims: [ -1, 1 ] } ]\n'
    'output [ { name: "y" data_type: TYPE_FP32 dims: [ -1, 1 ] } ]\n'
    "instance_group [ { count: 2 kind: KIND_CPU } ]\n"
)


def _repository(root: Path) -> Path:
    """Triton's layout: <model>/config.pbtxt and <model>/<version>/model.savedmodel/."""
    for name, export in (("hp2", HALF_PLUS_TWO), ("hp3", HALF_PLUS_THREE)):
        shutil.copytree(export, root / name / "1" / "model.savedmodel")
        policy = "version_policy: { all {} }\n" if name == "hp2" else _HP3_TENSORS
        (root / name / "config.pbtxt").write_text(
            f'name: "{name}"\nplatform: "tensorflow_savedmodel"\nmax_batch_size: 0\n{policy}'
        )
    return root


def test_tritons_command_line(tmp_path: Path) -> None:
    """tritonserver --model-repository=... --grpc-port --http-port --metrics-port
    --model-control-mode=none --strict-model-config=false --log-verbose=0 --exit-timeout-secs."""
    repo = _repository(tmp_path / "models")
    server = ServerProcess(
        f"--model-repository={repo}",
        "--grpc-port=0",
        "--http-port=0",
        "--metrics-port=0",
        "--model-control-mode=none",
        "--strict-model-config=false",
        "--log-verbose=0",
        "--exit-timeout-secs=5",
        program="tritonserver",
    )
    try:
        with triton_grpc.InferenceServerClient(f"127.0.0.1:{server.port}") as client:
            wait_for(
                lambda: client.is_model_ready("hp2") and client.is_model_ready("hp3"),
                timeout=120,
                what="both models",
            )
            tensor = triton_grpc.InferInput("x", [1, 1], "FP32")
            tensor.set_data_from_numpy(np.float32([[2.0]]))
            assert client.infer("hp3", [tensor]).as_numpy("y").tolist() == [[4.0]]
            http = triton_http.InferenceServerClient(f"127.0.0.1:{server.rest_port}")
            try:
                assert http.is_server_ready() and http.is_model_ready("hp2")
                rest_tensor = triton_http.InferInput("x", [1, 1], "FP32")
                rest_tensor.set_data_from_numpy(np.float32([[2.0]]))
                assert http.infer("hp2", [rest_tensor]).as_numpy("y").tolist() == [[3.0]]
                # /v2/logging: Triton's log settings, onto our logging.
                assert http.get_log_settings()["log_verbose_level"] == 0
                changed = http.update_log_settings({"log_verbose_level": 1})
                assert changed["log_verbose_level"] == 1 and changed["log_info"] is True
                with pytest.raises(InferenceServerException, match="must be true or false"):
                    http.update_log_settings({"log_info": "yes"})
                with pytest.raises(InferenceServerException, match="unknown log setting 'x'"):
                    http.update_log_settings({"x": 1})
                assert http.update_log_settings({"log_verbose_level": 0})["log_verbose_level"] == 0
                # Shared memory and trace settings: Triton's shape, with the reason.
                assert http.get_system_shared_memory_status() == []
                with pytest.raises(InferenceServerException, match="send the tensor data"):
                    http.register_system_shared_memory("r", "/r", 64)
                http.unregister_system_shared_memory()
                with pytest.raises(InferenceServerException, match="start swapserve with --otel"):
                    http.get_trace_settings()
            finally:
                http.close()
            # The same extensions over gRPC, with tritonclient.grpc's own calls.
            assert "logging" in client.get_server_metadata(as_json=True)["extensions"]
            logs = client.get_log_settings(as_json=True)["settings"]
            assert logs["log_verbose_level"] == {"uint32_param": 0}, logs
            changed = client.update_log_settings({"log_verbose_level": 1}, as_json=True)
            assert changed["settings"]["log_verbose_level"] == {"uint32_param": 1}
            with pytest.raises(InferenceServerException, match="must be true or false"):
                client.update_log_settings({"log_info": None})  # a value with no parameter set
            with pytest.raises(InferenceServerException, match="unknown log setting 'x'"):
                client.update_log_settings({"x": True})
            client.update_log_settings({"log_verbose_level": 0})
            assert client.get_system_shared_memory_status(as_json=True) == {}
            assert client.get_cuda_shared_memory_status(as_json=True) == {}
            with pytest.raises(InferenceServerException, match="send the tensor data") as err:
                client.register_system_shared_memory("r", "/r", 64)
            assert err.value.status() == "StatusCode.INVALID_ARGUMENT"
            client.unregister_system_shared_memory()
            client.unregister_cuda_shared_memory("r")
            with pytest.raises(InferenceServerException, match="start swapserve with --otel"):
                client.get_trace_settings()
            # Triton's metric names on Triton's metrics port.
            with pytest.raises(InferenceServerException):
                client.infer("hp3", [triton_grpc.InferInput("nope", [1, 1], "FP32")])
            scraped = (
                urllib.request.urlopen(
                    f"http://127.0.0.1:{server.metrics_port}/metrics", timeout=30
                )
                .read()
                .decode()
            )
            ok = re.search(r'^nv_inference_request_success\{model="hp3",version="1"\} (\d+)$',
                           scraped, re.M)  # fmt: skip
            assert ok and int(ok.group(1)) >= 1, scraped[-3000:]
            assert re.search(r'^nv_inference_count\{model="hp3",version="1"\} \d+$', scraped, re.M)
            assert "# TYPE nv_inference_request_duration_us counter" in scraped
            assert re.search(
                r'^nv_inference_request_failure\{model="hp3",reason="OTHER",version=""\} 1$',
                scraped,
                re.M,
            ), scraped[-2000:]
            # The config round-trips: `all {}` is reported as it was given.
            config = client.get_model_config("hp2", as_json=True)["config"]
            assert config["version_policy"] == {"all": {}}, config
            # input, output and instance_group as written (checked against the signature).
            config = client.get_model_config("hp3", as_json=True)["config"]
            assert config["input"] == [{"name": "x", "data_type": "TYPE_FP32", "dims": ["-1", "1"]}]
            assert config["instance_group"] == [{"count": 2, "kind": "KIND_CPU"}], config
            rest = urllib.request.urlopen(
                f"http://127.0.0.1:{server.rest_port}/v2/models/hp3/config", timeout=30
            )
            assert json.loads(rest.read())["output"] == [
                {"name": "y", "data_type": "TYPE_FP32", "dims": [-1, 1]}
            ]
            assert "--strict-model-config (Triton) is ignored" in server.log
            # none: the model set is the one read at start (a model added later is not loaded).
            shutil.copytree(repo / "hp2", repo / "late")
            (repo / "late" / "config.pbtxt").write_text('name: "late"\n')
            time.sleep(2)  # two of our version polls; the repository is not re-read
            assert [
                m["name"] for m in client.get_model_repository_index(as_json=True)["models"]
            ] == [
                "hp2",
                "hp3",
            ]
    finally:
        assert server.stop() == 0, server.log[-3000:]


def test_explicit_mode_loads_what_is_asked_while_the_other_model_serves(tmp_path: Path) -> None:
    """--model-control-mode=explicit --load-model=hp2: hp3 is listed but unloaded until
    RepositoryModelLoad; a load re-reads the model's config.pbtxt; a model added later loads
    when asked; hp2 answers throughout."""
    repo = _repository(tmp_path / "models")
    server = ServerProcess(
        f"--model-repository={repo}", "--grpc-port=0", "--http-port=0", "--metrics-port=0",
        "--model-control-mode=explicit", "--load-model=hp2", program="tritonserver",
    )  # fmt: skip
    failures: list[str] = []
    answers = [0]
    stop = threading.Event()

    def load() -> None:
        with triton_grpc.InferenceServerClient(f"127.0.0.1:{server.port}") as caller:
            tensor = triton_grpc.InferInput("x", [1, 1], "FP32")
            tensor.set_data_from_numpy(np.float32([[2.0]]))
            while not stop.is_set():
                try:
                    assert caller.infer("hp2", [tensor]).as_numpy("y").tolist() == [[3.0]]
                    answers[0] += 1
                except Exception as err:  # every failure is the test's finding
                    failures.append(repr(err))

    caller = threading.Thread(target=load, daemon=True)
    try:
        with triton_grpc.InferenceServerClient(f"127.0.0.1:{server.port}") as client:
            wait_for(lambda: client.is_model_ready("hp2"), timeout=120, what="hp2")
            caller.start()
            assert client.is_server_ready() and not client.is_model_ready("hp3")
            rows = client.get_model_repository_index(as_json=True)["models"]
            assert {"name": "hp3", "state": "UNAVAILABLE", "reason": "unloaded"} in rows, rows
            tensor = triton_grpc.InferInput("x", [1, 1], "FP32")
            tensor.set_data_from_numpy(np.float32([[2.0]]))
            with pytest.raises(InferenceServerException, match="was unloaded"):
                client.infer("hp3", [tensor])
            # A load reads the config as it is now: version 2 and a policy serving both.
            shutil.copytree(HALF_PLUS_TWO, repo / "hp3" / "2" / "model.savedmodel")
            (repo / "hp3" / "config.pbtxt").write_text(
                'name: "hp3"\nplatform: "tensorflow_savedmodel"\n'
                "version_policy: { specific { versions: [1, 2] } }\n"
            )
            client.load_model("hp3")  # answers once it serves
            assert client.is_model_ready("hp3", "1") and client.is_model_ready("hp3", "2")
            for version, y in (("1", 4.0), ("2", 3.0)):
                answer = client.infer("hp3", [tensor], model_version=version)
                assert answer.as_numpy("y").tolist() == [[y]]
            # A model added after start loads when asked; an unknown one is NOT_FOUND.
            shutil.copytree(repo / "hp2", repo / "late")
            (repo / "late" / "config.pbtxt").write_text('name: "late"\n')
            client.load_model("late")
            assert client.infer("late", [tensor]).as_numpy("y").tolist() == [[3.0]]
            with pytest.raises(InferenceServerException, match="not in the model repository"):
                client.load_model("nope")
            # A model whose config.pbtxt declares an input its signature lacks does not load;
            # it stays listed and unloaded, and the server stays ready.
            shutil.copytree(repo / "hp2" / "1", repo / "wrong" / "1")
            (repo / "wrong" / "config.pbtxt").write_text(
                'input [ { name: "z" data_type: TYPE_FP32 dims: [-1] } ]\n'
            )
            with pytest.raises(InferenceServerException) as refused:
                client.load_model("wrong")
            assert "input 'z' is declared but signature 'serving_default' has inputs ['x']" in (
                refused.value.message()
            )
            assert client.is_server_ready() and not client.is_model_ready("wrong")
            client.unload_model("hp3")
            assert client.is_server_ready() and not client.is_model_ready("hp3")
            count = answers[0]
            wait_for(lambda: answers[0] > count + 20, timeout=60, what="answers after")
    finally:
        stop.set()
        caller.join(30)
        assert server.stop() == 0, server.log[-3000:]
    assert failures == [] and answers[0] > 0


def test_unknown_values_are_refused_with_the_reason() -> None:
    for flag, words in (
        ("--model-control-mode=sometimes", "expected none, poll or explicit"),
        ("--grpc-use-ssl=true", "use --tls-cert"),
    ):
        out = subprocess.run(
            [PROGRAM, "--model-repository=/tmp", flag], capture_output=True, text=True, timeout=60
        )
        assert out.returncode == 2 and words in out.stderr, out.stderr
