"""The training side's calls: ``reload_after_export`` (the export path must be what serves),
``Client.wait_for_version`` and ``swapserve-client wait`` (for pipelines that let the watcher
find the export)."""

from __future__ import annotations

import socket
import threading
from pathlib import Path

import grpc
import pytest

from helpers import estimator_version, serving, serving_settings, wait_for
from swapserve.config.model_settings import ModelSettings, VersionPolicy
from swapserve.config.settings import Settings
from swapserve_client import Client, SwapserveError, reload_after_export
from swapserve_client import cli as client_cli


def test_reload_after_export_confirms_the_exported_version(tmp_path: Path) -> None:
    estimator_version(tmp_path, 1, weight=1.0)
    policy = VersionPolicy(specific=(1, 2))  # version 3 will never serve
    with serving(tmp_path, poll_seconds=600, versions=policy) as server:
        target = f"127.0.0.1:{server.port}"
        path = estimator_version(tmp_path, 2, weight=2.0)
        result = reload_after_export(target, "m", str(path).encode(), timeout=60)
        assert (result.previous_version, result.version) == (1, 2)
        later = estimator_version(tmp_path, 3, weight=3.0)
        with pytest.raises(SwapserveError) as err:
            reload_after_export(target, "m", later)
        assert err.value.code == grpc.StatusCode.FAILED_PRECONDITION
        assert "serves version 2, not the exported 3 (its version policy" in err.value.message
        with pytest.raises(ValueError, match="not a version directory"):
            reload_after_export(target, "m", tmp_path / "temp-4")


def test_wait_for_version_and_the_wait_command(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    estimator_version(tmp_path, 1, weight=1.0)
    with (
        serving(tmp_path, poll_seconds=0.1) as server,
        Client(f"127.0.0.1:{server.port}") as client,
    ):
        estimator_version(tmp_path, 2, weight=2.0)  # found by the watcher, no Reload
        assert client.wait_for_version("m", 2, timeout=60).serving_version == 2
        target = f"--target=127.0.0.1:{server.port}"
        assert client_cli.run([target, "wait", "m", "2"]) == 0
        assert '"serving_version": 2' in capsys.readouterr().out
        broken = estimator_version(tmp_path / "staging", 3, weight=3.0)
        (broken / "variables" / "variables.index").write_bytes(b"broken")
        broken.rename(tmp_path / "3")
        with pytest.raises(SwapserveError) as err:
            client.wait_for_version("m", 3, timeout=60)
        assert err.value.code == grpc.StatusCode.FAILED_PRECONDITION
        with pytest.raises(SwapserveError) as late:
            client.wait_for_version("m", 9, timeout=0.5)
        assert late.value.code == grpc.StatusCode.DEADLINE_EXCEEDED
        assert "is not seen by the server; serving: 2" in late.value.message
        assert client_cli.run([target, "--timeout=0.5", "wait", "m", "9"]) == 1
        assert "DEADLINE_EXCEEDED" in capsys.readouterr().err


def test_wait_for_version_rides_out_a_server_that_is_not_up_yet(tmp_path: Path) -> None:
    """A pipeline that waits while the server restarts (a rollout) keeps asking until it
    answers, instead of failing on the first UNAVAILABLE."""
    estimator_version(tmp_path, 1, weight=1.0)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    outcome: list[object] = []
    with Client(f"127.0.0.1:{port}") as client:
        waiter = threading.Thread(
            target=lambda: outcome.append(client.wait_for_version("m", 1, timeout=120))
        )
        waiter.start()
        wait_for(lambda: client_cli.run([f"--target=127.0.0.1:{port}", "--timeout=1", "wait", "m", "1"]) == 1, what="a refused wait")  # fmt: skip
        assert waiter.is_alive() and not outcome  # nothing listens yet: still waiting
        settings = Settings(
            models=(ModelSettings(name="m", export_root=tmp_path, poll_seconds=0.1),),
            host="127.0.0.1",
            port=port,
        )
        with serving_settings(settings):
            waiter.join(timeout=120)
        assert outcome and outcome[0].serving_version == 1  # type: ignore[attr-defined]
