"""Export roots as they really arrive (issue 30, items 11 and 12), on a real ``swapserve``
process under load: a slow copy (``saved_model.pb`` first, ``variables/`` 3 s later) is a
version still arriving, not a failure; a root full of numeric directories that are not
SavedModels (``/proc``) is no news; a model added by ``HandleReloadConfigRequest`` batches as
the others do."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import grpc
import numpy as np
import pytest
from tensorflow_serving.apis import model_management_pb2, model_service_pb2_grpc
from tensorflow_serving.config import model_server_config_pb2

from helpers import HALF_PLUS_TWO, CallLoad, ServerProcess, copy_version, wait_for
from swapserve_client import Client, SwapserveError

X = {"x": np.array([[1.0]], np.float32)}


def test_a_slow_copy_waits_instead_of_failing(tmp_path: Path) -> None:
    """Before: loaded as soon as saved_model.pb had settled, failed with an ERROR and a FAILED
    state (a false alert), then served on the retry when variables/ arrived."""
    root = tmp_path / "m"
    copy_version(HALF_PLUS_TWO, root, 1)
    server = ServerProcess(
        "--model-name", "m", "--export-root", str(root), "--poll-seconds", "0.1",
        "--reload-settle-seconds", "0.3",
    )  # fmt: skip
    try:
        with Client(f"127.0.0.1:{server.port}", timeout=30) as client:
            wait_for(lambda: client.model_status("m").serving_version == 1, 60)
            states: set[str] = set()

            def status() -> None:
                states.update(v.state for v in client.status("m") if v.version == 2)

            with CallLoad([lambda: client.predict("m", X), status], threads=4) as load:
                load.wait_for_answers(20)
                (root / "2").mkdir()
                shutil.copyfile(HALF_PLUS_TWO / "saved_model.pb", root / "2" / "saved_model.pb")
                wait_for(lambda: "looks like a copy still arriving" in server.log, 30)
                time.sleep(3)  # the copy pauses; polls go on
                shutil.copytree(HALF_PLUS_TWO / "variables", root / "2" / "variables")
                wait_for(lambda: client.model_status("m").serving_version == 2, 30, "version 2")
                load.wait_for_answers(20)
            assert load.errors == [], load.errors[:5]
            assert "FAILED" not in states, states
    finally:
        server.stop()
    assert " ERROR " not in server.log, server.log[-3000:]
    assert server.log.count("looks like a copy still arriving") == 1


def test_a_root_of_numeric_directories_that_are_not_savedmodels_is_quiet(tmp_path: Path) -> None:
    """Before: ``--export-root /proc`` made every process id a "discovered version" (a log line
    each, and a walk of each /proc/<pid>: half a core busy)."""
    server = ServerProcess("--model-name", "m", "--export-root", "/proc", "--poll-seconds", "0.2")
    try:
        with Client(f"127.0.0.1:{server.port}", timeout=30) as client:
            time.sleep(2)  # ten polls
            with pytest.raises(SwapserveError) as err:
                client.predict("m", X)
            assert err.value.code == grpc.StatusCode.UNAVAILABLE
    finally:
        server.stop()
    assert "discovered version" not in server.log


def test_a_model_added_by_reload_config_batches_as_the_others(tmp_path: Path) -> None:
    """Before: the re-added model lost the flags' batching: timed on 1 row, and it took 200
    rows where the others refused more than 128."""
    for name in ("a", "b"):
        copy_version(HALF_PLUS_TWO, tmp_path / name, 1)
    server = ServerProcess(
        "--model-name", "a", "--export-root", str(tmp_path / "a"), "--enable-batching",
        "--max-batch-size", "128",
    )  # fmt: skip
    try:
        target = f"127.0.0.1:{server.port}"
        with Client(target, timeout=30) as client, grpc.insecure_channel(target) as channel:
            wait_for(lambda: client.model_status("a").serving_version == 1, 60)
            config = model_server_config_pb2.ModelServerConfig()
            for name in ("a", "b"):
                entry = config.model_config_list.config.add()
                entry.name, entry.base_path = name, str(tmp_path / name)
                entry.model_platform = "tensorflow"
            with CallLoad([lambda: client.predict("a", X)], threads=2) as load:
                load.wait_for_answers(10)
                model_service_pb2_grpc.ModelServiceStub(channel).HandleReloadConfigRequest(
                    model_management_pb2.ReloadConfigRequest(config=config), timeout=60
                )
                load.wait_for_answers(10)
            assert load.errors == [], load.errors[:5]
            rows = {"x": np.ones([200, 1], np.float32)}
            for name in ("a", "b"):
                with pytest.raises(SwapserveError) as err:
                    client.predict(name, rows)
                assert err.value.code == grpc.StatusCode.INVALID_ARGUMENT, name
                assert "batches at most 128" in str(err.value)
    finally:
        server.stop()
    assert "model b: version 1 loaded" in server.log
    assert "timed on 128 rows" in server.log.split("model b: version 1 loaded", 1)[1].split("\n")[0]


def test_hot_swaps_under_load_leave_no_series_of_released_versions(tmp_path: Path) -> None:
    """Before: after 55 swaps under 4 clients, 5 released versions still had 20 series each
    (calls finishing after the release re-created them). The race is narrow: this check on a
    real process did not catch it in 60 swaps here, the unit test
    (test_a_call_finishing_after_its_version_was_released_makes_no_series) makes it happen
    every time, and ``make soak`` runs 1,000 swaps."""
    import re
    import urllib.request

    root = tmp_path / "m"
    copy_version(HALF_PLUS_TWO, root, 1)
    server = ServerProcess(
        "--model-name", "m", "--export-root", str(root), "--poll-seconds", "0.05",
        "--reload-settle-seconds", "0", "--metrics-port", "0", "--rest-port", "0",
    )  # fmt: skip
    metrics = f"http://127.0.0.1:{server.metrics_port}/metrics"
    try:
        with Client(f"127.0.0.1:{server.port}", timeout=30) as client:
            wait_for(lambda: client.model_status("m").serving_version == 1, 60)
            calls = [lambda: client.predict("m", X), lambda: client.metadata("m")]
            with CallLoad(calls, threads=4) as load:
                for version in range(2, 32):
                    copy_version(HALF_PLUS_TWO, root, version)
                    wait_for(lambda v=version: client.model_status("m").serving_version == v, 30)  # type: ignore[misc]
                load.wait_for_answers(20)
            assert load.errors == [], load.errors[:5]
        time.sleep(0.5)  # the last released version drains
        text = urllib.request.urlopen(metrics, timeout=10).read().decode()
        versions = set(re.findall(r'version="(\d+)"', text))
        assert versions <= {"31"}, sorted(versions, key=int)
    finally:
        server.stop()
