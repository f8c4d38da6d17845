"""Watching a rollout (issue 15): per-version metrics that come and go with the version, V2
statistics through the real tritonclient, GetModelStatus counts during a swap, bounded label
values, and one scrape for ``--workers``."""

from __future__ import annotations

import random
import re
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc as triton_grpc
import tritonclient.http as triton_http
from prometheus_client.parser import text_string_to_metric_families

from helpers import (
    HALF_PLUS_TWO,
    RolloutLoad,
    ServerProcess,
    copy_version,
    estimator_version,
    serving,
    serving_settings,
    wait_for,
)
from swapserve.config.model_settings import BatchingSettings, ModelSettings
from swapserve.config.settings import Settings
from swapserve_client import Client, SwapserveError

ONE = {"number": np.ones([1, 1], np.float32)}


def _samples(text: str) -> list[tuple[str, dict[str, str], float]]:
    return [
        (s.name, s.labels, s.value)
        for family in text_string_to_metric_families(text)
        for s in family.samples
    ]


def _scrape(port: int) -> list[tuple[str, dict[str, str], float]]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as reply:
        return _samples(reply.read().decode())


def _sum(samples: list[tuple[str, dict[str, str], float]], name: str, **labels: str) -> float:
    return sum(v for n, ls, v in samples if n == name and labels.items() <= ls.items())


def test_a_rollout_per_version_metrics_and_status(tmp_path: Path) -> None:
    """Load runs through the swap; each version's answers are counted against it in the
    metrics and in GetModelStatus, and the old version's series go when it is released."""
    estimator_version(tmp_path, 1, weight=1.0)
    with (
        serving(tmp_path, poll_seconds=600, metrics_port=0) as server,
        Client(f"127.0.0.1:{server.port}", timeout=60) as client,
    ):
        with RolloutLoad(client) as load:
            wait_for(lambda: load.seen[1] >= 50, what="answers from version 1")
            during = _scrape(server.metrics_port)
            estimator_version(tmp_path, 2, weight=2.0)
            client.reload("m")
            wait_for(lambda: load.seen[2] >= 50, what="answers from version 2")
        assert load.failures == []
        server.registry.get("m").wait_unloaded(10)
        after = _scrape(server.metrics_port)
        status = {v.version: v for v in client.model_status("m").versions}
    ok = {"model": "m", "protocol": "swapserve", "method": "Predict", "code": "OK"}
    assert _sum(during, "swapserve_requests_total", **ok, version="1",
                signature="serving_default") >= 50  # fmt: skip
    assert _sum(after, "swapserve_requests_total", **ok, version="2") == load.seen[2]
    assert _sum(after, "swapserve_requests_total", version="1") == 0  # released: gone
    assert not [s for s in after if s[1].get("version") == "1"]
    assert status[2].request_count == load.seen[2] and status[2].error_count == 0
    assert status[2].p99_seconds > 0


def test_label_values_stay_bounded_under_random_names(tmp_path: Path) -> None:
    copy_version(HALF_PLUS_TWO, tmp_path, 123)
    rng = random.Random(7)

    def word() -> str:
        return "".join(rng.choice("abcxyz_-.:/ \n\u00e9") for _ in range(rng.randint(1, 12)))

    with (
        serving(tmp_path, poll_seconds=600, metrics_port=0) as server,
        Client(f"127.0.0.1:{server.port}", timeout=30, retries=0) as client,
    ):
        x = {"x": np.float32([[1.0]])}
        for i in range(1000):
            kind = i % 4
            try:
                if kind == 0:
                    client.predict(word(), x)
                elif kind == 1:
                    client.predict("m", x, version=rng.randint(1, 2**62))
                elif kind == 2:
                    client.predict("m", x, label="l" + word().strip())
                else:
                    client.predict("m", x, signature=word())
            except SwapserveError:
                pass
        samples = _scrape(server.metrics_port)
    series = {tuple(sorted(ls.items())) for n, ls, _ in samples if n == "swapserve_requests_total"}
    values = {k: {dict(s)[k] for s in series} for k in ("model", "version", "signature")}
    assert values["model"] <= {"", "m"}, values
    assert values["version"] <= {"", "123"}, values
    assert values["signature"] <= {""}, values
    assert len(series) <= 6, series


def test_v2_statistics_and_config_through_tritonclient(tmp_path: Path) -> None:
    copy_version(HALF_PLUS_TWO, tmp_path, 123)
    batching = BatchingSettings(enabled=True, max_batch_size=8, batch_timeout_micros=500)
    settings = Settings(
        models=(ModelSettings("hp2", tmp_path, poll_seconds=600, batching=batching),),
        host="127.0.0.1",
        port=0,
        rest_port=0,
    )
    with serving_settings(settings) as server:
        grpc_client = triton_grpc.InferenceServerClient(f"127.0.0.1:{server.port}")
        http_client = triton_http.InferenceServerClient(f"127.0.0.1:{server.rest_port}")
        for client, module in ((grpc_client, triton_grpc), (http_client, triton_http)):
            for rows in (1, 3):
                inp = module.InferInput("x", [rows, 1], "FP32")
                inp.set_data_from_numpy(np.ones([rows, 1], np.float32))
                client.infer("hp2", [inp])
        with pytest.raises(Exception, match="x"):
            bad = triton_grpc.InferInput("x", [1, 2, 3], "FP32")
            bad.set_data_from_numpy(np.ones([1, 2, 3], np.float32))
            grpc_client.infer("hp2", [bad])
        for stats in (
            grpc_client.get_inference_statistics("hp2", as_json=True),
            http_client.get_inference_statistics("hp2"),
        ):
            (entry,) = stats["model_stats"]
            assert entry["name"] == "hp2" and entry["version"] == "123"
            infer = entry["inference_stats"]
            assert int(entry["inference_count"]) == 8  # rows: 1 + 3, twice
            assert 1 <= int(entry["execution_count"]) <= 4
            assert int(infer["success"]["count"]) == 4 and int(infer["success"]["ns"]) > 0
            assert int(infer["fail"]["count"]) == 1
            assert int(infer["compute_infer"]["ns"]) > 0 and int(entry["last_inference"]) > 0
        everything = http_client.get_inference_statistics()
        assert [e["name"] for e in everything["model_stats"]] == ["hp2"]
        for config in (
            grpc_client.get_model_config("hp2", as_json=True)["config"],
            http_client.get_model_config("hp2"),
        ):
            assert config["name"] == "hp2" and config["platform"] == "tensorflow_savedmodel"
            assert int(config["max_batch_size"]) == 8
            assert config["input"][0]["name"] == "x"
            assert config["input"][0]["data_type"] == "TYPE_FP32"
            assert [int(d) for d in config["input"][0]["dims"]] == [1]
            assert int(config["dynamic_batching"]["max_queue_delay_microseconds"]) == 500
        grpc_client.close()
        http_client.close()


@pytest.mark.slow
def test_one_scrape_sums_the_workers(tmp_path: Path) -> None:
    estimator_version(tmp_path, 1, weight=1.0)
    server = ServerProcess(
        "--model-name", "seed", "--export-root", str(tmp_path), "--workers", "2",
        "--poll-seconds", "600", "--metrics-port", "0",
    )  # fmt: skip
    try:
        wait_for(lambda: server.log.count("serving (loaded in") >= 2, timeout=120)
        match = wait_for(
            lambda: re.search(r"metrics on http://[^:]+:(\d+)/metrics \(the sum", server.log),
            what="the supervisor's metrics endpoint",
        )
        port = int(match.group(1))
        sent = 0
        for _ in range(24):  # fresh connections spread over both workers
            with Client(f"127.0.0.1:{server.port}", timeout=30) as client:
                for _ in range(5):
                    client.predict("seed", ONE)
                    sent += 1
        samples = _scrape(port)
        ok = {"model": "seed", "protocol": "swapserve", "method": "Predict", "code": "OK"}
        assert _sum(samples, "swapserve_requests_total", **ok) == sent
        assert _sum(samples, "swapserve_model_runs_total", model="seed", version="1") == sent
        assert _sum(samples, "swapserve_served_version", model="seed") == 1  # max, not sum
        assert _sum(samples, "swapserve_loaded_versions", model="seed") == 2  # one per worker
        assert _sum(samples, "process_resident_memory_bytes") > 0
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/other", timeout=10)
        assert err.value.code == 404
        err.value.close()
    finally:
        assert server.stop() == 0


def test_status_watch_shows_a_rollout(tmp_path: Path) -> None:
    """``swapserve-client status --watch``: requests per second, errors and p99 per version."""
    import subprocess
    import sys

    estimator_version(tmp_path, 1, weight=1.0)
    with (
        serving(tmp_path, poll_seconds=600) as server,
        Client(f"127.0.0.1:{server.port}", timeout=60) as client,
        RolloutLoad(client) as load,
    ):
        wait_for(lambda: load.seen[1] >= 20, what="answers")
        estimator_version(tmp_path, 2, weight=2.0)
        client.reload("m")
        wait_for(lambda: load.seen[2] >= 20, what="answers from version 2")
        out = subprocess.run(
            [str(Path(sys.executable).parent / "swapserve-client"), "--target",
             f"127.0.0.1:{server.port}", "status", "m", "--watch", "0.5", "--count", "3"],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    assert out.returncode == 0, out.stderr
    frames = out.stdout.strip().split("\n\n")
    assert len(frames) == 3
    assert "REQ/S" in frames[0] and "P99 ms" in frames[0]
    row = next(ln for ln in frames[-1].splitlines() if ln.split()[:2] == ["2", "AVAILABLE"])
    rate, errors, p99 = row.split()[3:6]
    assert float(rate) > 0 and errors == "0" and float(p99) > 0, frames[-1]
