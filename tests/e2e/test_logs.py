"""--log-format json: one JSON object per line, model events with model/version fields."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from helpers import ServerProcess, estimator_version, wait_for
from swapserve_client import Client


def test_json_logs_carry_model_events(tmp_path: Path) -> None:
    estimator_version(tmp_path, 1, weight=1.0)
    server = ServerProcess(
        "--model-name", "seed", "--export-root", str(tmp_path), "--log-format", "json",
        "--poll-seconds", "600",
    )  # fmt: skip
    try:
        wait_for(lambda: '"event": "serving"' in server.log, timeout=60)
        estimator_version(tmp_path, 2, weight=2.0)
        with Client(f"127.0.0.1:{server.port}", timeout=60) as client:
            client.reload("seed")
            client.predict("seed", {"number": np.ones([1, 1], np.float32)})
        wait_for(lambda: '"event": "unloaded"' in server.log, timeout=30)
    finally:
        assert server.stop() == 0
    records = [json.loads(line) for line in server.lines if line.startswith("{")]
    assert records and all({"time", "level", "logger", "message"} <= r.keys() for r in records)
    events = {r["event"]: r for r in records if "event" in r}
    assert events["swapped"]["model"] == "seed"
    assert events["swapped"]["version"] == 2
    assert events["swapped"]["previous_version"] == 1
    assert events["swapped"]["load_seconds"] > 0
    assert events["unloaded"]["version"] in (1, 2)
    assert {"discovered", "loading", "serving", "swapped", "unloaded"} <= events.keys()
