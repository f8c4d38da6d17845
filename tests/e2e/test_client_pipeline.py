"""The training side's calls: ``reload_after_export`` (the export path must be what serves),
``Client.wait_for_version`` and ``swapserve-client wait`` (for pipelines that let the watcher
find the export)."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest

from helpers import estimator_version, serving
from swapserve.settings import VersionPolicy
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
