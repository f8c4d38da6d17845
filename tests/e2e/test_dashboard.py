"""deploy/grafana/swapserve.json against a live scrape: every metric its queries name is one the
server exports (after the calls a rollout makes), and the checker finds a broken dashboard."""

from __future__ import annotations

import copy
import importlib.util
import json
import urllib.request
from pathlib import Path
from types import ModuleType

import numpy as np

from helpers import REPO, estimator_version, serving_settings
from swapserve.config.model_settings import BatchingSettings, ModelSettings
from swapserve.config.settings import Settings
from swapserve_client import Client


def _checker() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "check_dashboard", REPO / "deploy" / "grafana" / "check_dashboard.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_dashboard_query_names_an_exported_metric(tmp_path: Path) -> None:
    check = _checker()
    dashboard = json.loads((REPO / "deploy" / "grafana" / "swapserve.json").read_text())
    estimator_version(tmp_path / "m", 1, weight=1.0)
    batching = BatchingSettings(enabled=True, max_batch_size=8, batch_timeout_micros=100)
    settings = Settings(
        models=(ModelSettings("m", tmp_path / "m", poll_seconds=600, batching=batching),),
        host="127.0.0.1",
        port=0,
        metrics_port=0,
        request_log=tmp_path / "log",
    )
    with serving_settings(settings) as server, Client(f"127.0.0.1:{server.port}") as client:
        client.predict("m", {"number": np.ones([2, 1], np.float32)})
        estimator_version(tmp_path / "m", 2, weight=2.0)
        client.reload("m")  # a swap and an unload
        client.predict("m", {"number": np.ones([2, 1], np.float32)})
        server.registry.get("m").wait_unloaded(10)
        url = f"http://127.0.0.1:{server.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=30) as reply:
            scraped = reply.read().decode()
    exported = {line.split("{")[0].split(" ")[0] for line in scraped.splitlines()}
    assert check.problems(dashboard, exported) == []
    assert len(check.queries(dashboard)) >= 15
    # The checker is not a rubber stamp.
    broken = copy.deepcopy(dashboard)
    broken["panels"][0]["targets"][0]["expr"] = "rate(swapserve_no_such_metric_total[1m])"
    broken["panels"][1]["id"] = broken["panels"][0]["id"]
    found = check.problems(broken, exported)
    assert any("swapserve_no_such_metric_total is not exported" in p for p in found)
    assert any("panel ids" in p for p in found)
