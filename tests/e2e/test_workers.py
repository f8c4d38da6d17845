"""--workers N: processes sharing one port, converging admin changes, supervision."""

from __future__ import annotations

import os
import re
import signal
from pathlib import Path

import numpy as np
import pytest

from helpers import ServerProcess, estimator_version, wait_for
from swapserve_client import Client, SwapserveError

ONE = np.ones([1, 1], np.float32)


def versions_seen(port: int, channels: int = 24) -> set[int]:
    """The versions that answer through many fresh connections (spread over the workers)."""
    seen = set()
    for _ in range(channels):
        with Client(f"127.0.0.1:{port}", timeout=30) as client:
            seen.add(client.predict_full("seed", {"number": ONE}).version)
    return seen


def worker_pids(log: str) -> dict[int, int]:
    return {int(w): int(p) for w, p in re.findall(r"worker (\d+) started \(pid (\d+)\)", log)}


@pytest.mark.slow
def test_two_workers_converge_and_survive_a_crash(tmp_path: Path) -> None:
    estimator_version(tmp_path, 1, weight=1.0)
    server = ServerProcess(
        "--model-name",
        "seed",
        "--export-root",
        str(tmp_path),
        "--workers",
        "2",
        "--poll-seconds",
        "600",
    )
    try:
        assert "(2 workers)" in server.log
        wait_for(lambda: server.log.count("serving (loaded in") >= 2, timeout=120)
        assert versions_seen(server.port) == {1}

        # Reload through one connection answers only when both workers serve version 2.
        estimator_version(tmp_path, 2, weight=2.0)
        with Client(f"127.0.0.1:{server.port}", timeout=120) as client:
            result = client.reload("seed")
        assert (result.previous_version, result.version) == (1, 2)
        assert versions_seen(server.port) == {2}

        # Pin (roll back) everywhere.
        with Client(f"127.0.0.1:{server.port}", timeout=120) as client:
            assert client.reload("seed", version=1).pinned
        assert versions_seen(server.port) == {1}

        # A crashed worker is restarted and re-applies the pin.
        pids = worker_pids(server.log)
        os.kill(pids[0], signal.SIGKILL)
        wait_for(
            lambda: (
                len(worker_pids(server.log)) == 2
                and worker_pids(server.log)[0] != pids[0]
                and server.log.count("worker 0 serving") >= 2
            ),
            timeout=120,
            what="a restart",
        )
        assert "worker 0 (pid" in server.log and "exited with -9; restarting" in server.log
        wait_for(lambda: versions_seen(server.port, 8) == {1}, timeout=60)
        assert versions_seen(server.port) == {1}

        # A broken version fails everywhere and changes nothing.
        estimator_version(tmp_path, 3, weight=3.0)
        (tmp_path / "3" / "variables" / "variables.index").write_bytes(b"broken")
        with (
            Client(f"127.0.0.1:{server.port}", timeout=120) as client,
            pytest.raises(SwapserveError) as exc,
        ):
            client.reload("seed", version=3)
        assert exc.value.code.name == "FAILED_PRECONDITION"
        assert versions_seen(server.port) == {1}
    finally:
        code = server.stop()
    assert code == 0, server.log
    assert "stopping 2 workers" in server.log


def labels_seen(port: int, channels: int = 24) -> list[dict[str, int]]:
    """Each fresh connection's view of the seed model's labels (spread over the workers)."""
    seen = []
    for _ in range(channels):
        with Client(f"127.0.0.1:{port}", timeout=30) as client:
            seen.append(client.model_status("seed").labels)
    return seen


@pytest.mark.slow
def test_sighup_reaches_every_worker(tmp_path: Path) -> None:
    estimator_version(tmp_path / "seed", 1, weight=1.0)
    estimator_version(tmp_path / "seed", 2, weight=2.0)
    config = tmp_path / "c.yaml"
    entry = f"models:\n  - name: seed\n    export_root: {tmp_path / 'seed'}\n"
    config.write_text(entry + "    labels: {stable: 1}\n")
    server = ServerProcess("--config", str(config), "--workers", "2")
    try:
        wait_for(lambda: server.log.count("serving (loaded in") >= 2, timeout=120)
        assert all(labels == {"stable": 1} for labels in labels_seen(server.port))
        # New labels: the supervisor passes SIGHUP on; every worker applies them.
        config.write_text(entry + "    labels: {stable: 2, canary: 1}\n")
        server.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: server.log.count("config applied: updated seed") >= 2, timeout=60)
        assert all(labels == {"stable": 2, "canary": 1} for labels in labels_seen(server.port))
        # Adding a model needs a restart in this mode: refused, logged, nothing changes.
        config.write_text(entry + f"  - name: other\n    export_root: {tmp_path / 'seed'}\n")
        server.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: "adding or removing models needs a restart" in server.log, timeout=60)
        assert versions_seen(server.port) == {2}
    finally:
        assert server.stop() == 0, server.log
