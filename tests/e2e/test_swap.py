"""Hot swap, half-written and broken versions, Reload, pinning, and releasing old versions."""

from __future__ import annotations

import logging
import os
import shutil
import threading
import time
from pathlib import Path

import grpc
import numpy as np
import pytest

from helpers import BAD, estimator_export, estimator_version, serving, wait_for
from swapserve.model.loaded_version import live_versions
from swapserve_client import Client, SwapserveError

ONE = np.ones([4, 1], np.float32)


def _serving_version(client: Client) -> int:
    return next((s.version for s in client.status("m") if s.serving), 0)


def _error(client: Client, version: int) -> str:
    return next((s.error for s in client.status("m") if s.version == version), "")


def _state(client: Client, version: int) -> str:
    return next((s.state for s in client.status("m") if s.version == version), "")


def test_hot_swap_under_load(tmp_path: Path) -> None:
    """8 threads predict nonstop while 5 new versions appear: no failure, and every answer
    matches the weights of the version that reports it (output = 2 * version * x)."""
    estimator_version(tmp_path, 1, weight=1.0)
    results: list[tuple[int, float]] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    with serving(tmp_path, poll_seconds=0.05) as server:
        target = f"127.0.0.1:{server.port}"

        def hammer() -> None:
            with Client(target, timeout=10) as client:
                while not stop.is_set():
                    try:
                        r = client.predict_full("m", {"number": ONE})
                    except Exception as err:
                        errors.append(err)
                        return
                    values = r.outputs["output"]
                    assert np.all(values == values[0, 0])
                    results.append((r.version, float(values[0, 0])))

        threads = [threading.Thread(target=hammer) for _ in range(8)]
        for t in threads:
            t.start()
        with Client(target) as admin:
            for version in range(2, 7):
                time.sleep(0.3)
                estimator_version(tmp_path, version, weight=float(version))
                wait_for(lambda v=version: _serving_version(admin) == v, what=f"version {version}")
            time.sleep(0.3)
        stop.set()
        for t in threads:
            t.join()

    assert not errors, errors[:3]
    assert len(results) > 100
    wrong = [(v, y) for v, y in results if abs(y - 2.0 * v) > 1e-4]
    assert not wrong, wrong[:5]
    assert {v for v, _ in results} == {1, 2, 3, 4, 5, 6}


def test_half_written_version_is_not_loaded_while_files_change(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    estimator_version(tmp_path, 1, weight=1.0)
    with (
        serving(tmp_path, poll_seconds=0.05, settle_seconds=1.0) as server,
        Client(f"127.0.0.1:{server.port}") as client,
    ):
        # Copy version 2 file by file, slower than polls but faster than the settle period,
        # as rsync or a cloud copy does into the final directory name.
        src = estimator_export(tmp_path_factory.mktemp("staging") / "v2", weight=2.0, bias=0.0)
        files = sorted(p for p in src.rglob("*") if p.is_file())
        files.sort(key=lambda p: p.name != "saved_model.pb")  # the graph first: the worst case
        for f in files:
            dest = tmp_path / "2" / f.relative_to(src)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(f, dest)
            for _ in range(5):
                time.sleep(0.1)
                assert _state(client, 2) == "START"
                assert _serving_version(client) == 1
        wait_for(lambda: _serving_version(client) == 2, what="version 2 after it settled")
        np.testing.assert_allclose(client.predict("m", {"number": ONE})["output"], 4 * ONE)


def test_a_version_without_its_variables_waits_then_loads_when_they_arrive(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """A slow copy (saved_model.pb first, variables/ later) is a version still arriving: START
    with the reason and one WARNING, never FAILED and an ERROR (a false alert)."""
    estimator_version(tmp_path, 1, weight=1.0)
    src = estimator_export(tmp_path_factory.mktemp("staging") / "v2", weight=2.0, bias=0.0)
    with (
        serving(tmp_path, poll_seconds=0.05, settle_seconds=0.1) as server,
        Client(f"127.0.0.1:{server.port}") as client,
    ):
        (tmp_path / "2").mkdir()
        shutil.copyfile(src / "saved_model.pb", tmp_path / "2" / "saved_model.pb")
        wait_for(lambda: "waiting" in _error(client, 2), what="version 2 to be found incomplete")
        [v2] = [s for s in client.status("m") if s.version == 2]
        assert v2.state == "START" and "variables/variables.index is missing" in v2.error, v2
        assert _serving_version(client) == 1
        np.testing.assert_allclose(client.predict("m", {"number": ONE})["output"], 2 * ONE)
        # The variables arrive: the file set changed, so the watcher tries again.
        shutil.copytree(src / "variables", tmp_path / "2" / "variables")
        wait_for(lambda: _serving_version(client) == 2, what="version 2 after the retry")
        np.testing.assert_allclose(client.predict("m", {"number": ONE})["output"], 4 * ONE)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text[-2000:]


def test_broken_versions_keep_the_good_one_serving(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="swapserve")
    estimator_version(tmp_path, 1, weight=1.0)
    with (
        serving(tmp_path, poll_seconds=0.05) as server,
        Client(f"127.0.0.1:{server.port}") as client,
    ):
        shutil.copytree(BAD, tmp_path / "2")  # a SessionBundle, not a SavedModel: never complete
        estimator_version(tmp_path, 3, weight=3.0)
        data = next((tmp_path / "3" / "variables").glob("variables.data-*"))
        with open(data, "r+b") as f:
            f.truncate(max(1, os.path.getsize(data) // 2))
        wait_for(lambda: _state(client, 3) == "FAILED", what="truncated version 3 to fail")
        time.sleep(0.5)  # many polls: a failed version is not retried while its files are the same
        assert sum("loading version 3" in r.getMessage() for r in caplog.records) == 1
        statuses = {s.version: s for s in client.status("m")}
        assert statuses[2].state == "START"  # no saved_model.pb: not a candidate at all
        assert statuses[3].state == "FAILED" and statuses[3].error
        assert statuses[1].serving and statuses[1].state == "AVAILABLE"
        np.testing.assert_allclose(client.predict("m", {"number": ONE})["output"], 2 * ONE)
        # The watcher keeps watching: the next good version still gets picked up.
        estimator_version(tmp_path, 4, weight=4.0)
        wait_for(lambda: _serving_version(client) == 4, what="version 4")
        np.testing.assert_allclose(client.predict("m", {"number": ONE})["output"], 8 * ONE)


def test_reload_answers_before_the_next_poll(tmp_path: Path) -> None:
    estimator_version(tmp_path, 1, weight=1.0)
    with (
        serving(tmp_path, poll_seconds=600) as server,
        Client(f"127.0.0.1:{server.port}") as client,
    ):
        estimator_version(tmp_path, 2, weight=2.0)
        start = time.monotonic()
        result = client.reload("m")
        assert time.monotonic() - start < 30
        assert (result.previous_version, result.version, result.pinned) == (1, 2, False)
        assert result.load_seconds > 0
        r = client.predict_full("m", {"number": ONE})
        assert r.version == 2
        np.testing.assert_allclose(r.outputs["output"], 4 * ONE)
        # Nothing new: a no-op that says so.
        result = client.reload("m")
        assert (result.previous_version, result.version, result.load_seconds) == (2, 2, 0.0)


def test_pin_rollback_and_unpin(tmp_path: Path) -> None:
    estimator_version(tmp_path, 1, weight=1.0)
    estimator_version(tmp_path, 2, weight=2.0)
    with (
        serving(tmp_path, poll_seconds=0.05) as server,
        Client(f"127.0.0.1:{server.port}") as client,
    ):
        wait_for(lambda: _serving_version(client) == 2)
        result = client.reload("m", version=1)  # roll back
        assert (result.previous_version, result.version, result.pinned) == (2, 1, True)
        assert client.predict_full("m", {"number": ONE}).version == 1
        estimator_version(tmp_path, 3, weight=3.0)
        time.sleep(0.6)  # many polls: pinned, so the watcher does not move forward
        assert _serving_version(client) == 1
        assert _state(client, 3) == "START"
        result = client.reload("m")  # follow the newest again
        assert (result.previous_version, result.version, result.pinned) == (1, 3, False)
        np.testing.assert_allclose(client.predict("m", {"number": ONE})["output"], 6 * ONE)


def test_reload_of_broken_or_missing_version_changes_nothing(tmp_path: Path) -> None:
    estimator_version(tmp_path, 1, weight=1.0)
    with (
        serving(tmp_path, poll_seconds=600) as server,
        Client(f"127.0.0.1:{server.port}") as client,
    ):
        estimator_version(tmp_path, 5, weight=5.0)
        (tmp_path / "5" / "variables" / "variables.index").write_bytes(b"garbage")
        for version in (5, 0):
            with pytest.raises(SwapserveError) as exc:
                client.reload("m", version=version)
            assert exc.value.code == grpc.StatusCode.FAILED_PRECONDITION
            assert exc.value.message.startswith(
                "version 5 of model 'm' failed to load (version 1 keeps serving): "
            )
            assert _serving_version(client) == 1
            assert client.predict_full("m", {"number": ONE}).version == 1
        assert _state(client, 5) == "FAILED"
        with pytest.raises(SwapserveError) as exc:
            client.reload("m", version=99)
        assert exc.value.code == grpc.StatusCode.NOT_FOUND
        assert "version 99 of model 'm' is not in export root" in exc.value.message
        assert "versions there: [5, 1]" in exc.value.message
        with pytest.raises(SwapserveError) as exc:
            client.reload("nope")
        assert exc.value.code == grpc.StatusCode.NOT_FOUND
        # A fixed export is accepted again.
        shutil.rmtree(tmp_path / "5")
        estimator_version(tmp_path, 5, weight=5.0)
        assert client.reload("m").version == 5


def test_old_versions_are_released(tmp_path: Path) -> None:
    baseline = live_versions()
    estimator_version(tmp_path, 1, weight=1.0)
    with (
        serving(tmp_path, poll_seconds=600) as server,
        Client(f"127.0.0.1:{server.port}") as client,
    ):
        manager = server.registry.get("m")
        for version in range(2, 22):  # 20 swaps
            estimator_version(tmp_path, version, weight=float(version))
            assert client.reload("m").version == version
            assert manager.wait_unloaded(timeout=10)
            assert live_versions() == baseline + 1
        states = {s.version: s.state for s in client.status("m")}
        assert states[21] == "AVAILABLE"
        assert all(states[v] == "END" for v in range(1, 21))
    assert live_versions() == baseline


def test_deleting_the_served_version_falls_back(tmp_path: Path) -> None:
    """As with TF Serving, removing the newest export directory rolls back to the one before."""
    estimator_version(tmp_path, 1, weight=1.0)
    estimator_version(tmp_path, 2, weight=2.0)
    with (
        serving(tmp_path, poll_seconds=0.05) as server,
        Client(f"127.0.0.1:{server.port}") as client,
    ):
        wait_for(lambda: _serving_version(client) == 2)
        shutil.rmtree(tmp_path / "2")
        wait_for(lambda: _serving_version(client) == 1, what="fallback to version 1")
        np.testing.assert_allclose(client.predict("m", {"number": ONE})["output"], 2 * ONE)


def test_ignores_temp_and_non_numeric_dirs(tmp_path: Path) -> None:
    estimator_version(tmp_path, 1, weight=1.0)
    with (
        serving(tmp_path, poll_seconds=0.05) as server,
        Client(f"127.0.0.1:{server.port}") as client,
    ):
        estimator_export(tmp_path / "temp-99", weight=9.0, bias=0.0)
        estimator_export(tmp_path / "v99", weight=9.0, bias=0.0)
        estimator_export(tmp_path / "0", weight=9.0, bias=0.0)
        time.sleep(0.5)
        assert [s.version for s in client.status("m")] == [1]
