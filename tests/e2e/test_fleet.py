"""Several replicas on loopback: a balancing, retrying client; fleet-wide status and reload."""

from __future__ import annotations

import json
from contextlib import ExitStack
from pathlib import Path

import numpy as np
import pytest

from helpers import RolloutLoad, estimator_version, serving, wait_for
from swapserve.app import App
from swapserve_client import Client, targets
from swapserve_client import cli as client_cli

X = {"number": np.ones([1, 1], np.float32)}


def _predicts(server: App) -> float:
    wanted = {"model": "m", "protocol": "swapserve", "method": "Predict", "code": "OK"}
    return sum(
        s.value
        for family in server.metrics.registry.collect()
        for s in family.samples
        if s.name == "swapserve_requests_total" and wanted.items() <= s.labels.items()
    )


def test_targets_helpers() -> None:
    assert targets.split(" a:1, b:2 ,") == ["a:1", "b:2"]
    assert targets.channel_target("dns:///svc:8500") == "dns:///svc:8500"
    assert targets.channel_target(["127.0.0.1:1", "127.0.0.2:2"]) == "ipv4:127.0.0.1:1,127.0.0.2:2"
    assert targets.channel_target("[::1]:1,[::2]:2") == "ipv6:[::1]:1,[::2]:2"
    assert "127.0.0.1:7" in targets.resolve("localhost:7")
    with pytest.raises(ValueError, match="mix IPv4 and IPv6"):
        targets.channel_target("127.0.0.1:1,[::1]:2")
    with pytest.raises(ValueError, match="expected host:port"):
        targets.resolve("nocolon")
    with pytest.raises(ValueError, match="no target given"):
        targets.split(" , ")
    config = json.loads(targets.service_config(3))
    assert config["loadBalancingConfig"] == [{"round_robin": {}}]
    assert config["methodConfig"][0]["retryPolicy"]["maxAttempts"] == 4
    assert "methodConfig" not in json.loads(targets.service_config(0))


def test_fleet_balancing_rollout_and_fleet_commands(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    estimator_version(tmp_path, 1, weight=1.0)
    with ExitStack() as stack:
        servers = [stack.enter_context(serving(tmp_path, poll_seconds=0.1)) for _ in range(3)]
        addresses = [f"127.0.0.1:{s.port}" for s in servers]
        with Client(addresses, timeout=30) as client:
            # Round robin: every replica answers its share.
            for _ in range(60):
                assert client.predict_full("m", X).version == 1
            assert all(_predicts(s) >= 10 for s in servers), [_predicts(s) for s in servers]

            # A rollout under load: every replica converges, no request fails, every answer
            # says which version computed it.
            with RolloutLoad(client) as load:
                estimator_version(tmp_path, 2, weight=2.0)
                for s in servers:
                    manager = s.registry.get("m")
                    wait_for(lambda m=manager: m.serving_version == 2, what="every replica on 2")
                wait_for(lambda: load.seen[2] >= 20, what="answers from version 2")
            assert load.failures == []
            assert set(load.seen) <= {1, 2}

        # Fleet-wide status and reload, one replica down.
        servers[2].stop(grace=0)
        fleet = ",".join(addresses)
        code = client_cli.run(["--timeout=10", "status", "m", "--targets", fleet])
        out = json.loads(capsys.readouterr().out)
        assert code == 1  # one replica did not answer
        answers = out["replicas"]
        assert [answers[a]["serving_version"] for a in addresses[:2]] == [2, 2]
        assert answers[addresses[2]]["error"].startswith(("UNAVAILABLE:", "DEADLINE_EXCEEDED:"))

        code = client_cli.run(["--timeout=30", "reload", "m", "--version", "1", "--targets", fleet])
        out = json.loads(capsys.readouterr().out)
        assert code == 1
        for a in addresses[:2]:
            assert out["replicas"][a] == {
                "model": "m",
                "previous_version": 2,
                "version": 1,
                "load_seconds": out["replicas"][a]["load_seconds"],
                "pinned": True,
            }
        assert "error" in out["replicas"][addresses[2]]

        code = client_cli.run(
            ["--timeout=10", "status", "m", "--targets", fleet, "--watch", "0.1", "--count", "1"]
        )
        table = capsys.readouterr().out.splitlines()
        assert code == 0
        assert table[0] == "model m on 3 replicas"
        rows = {line.split()[0]: line.split() for line in table[2:5]}
        assert rows[addresses[0]][1:3] == ["1", "1"]  # serving 1, pinned 1
        assert rows[addresses[2]][1] == "-"

        # The balancing client keeps working with a replica gone (retries pick another).
        with Client(addresses, timeout=30) as client:
            for _ in range(30):
                assert client.predict_full("m", X).version == 1
