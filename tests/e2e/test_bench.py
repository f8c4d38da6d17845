"""The benchmark harness runs (tiny sizes); benchmarks themselves are not tests."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from helpers import REPO


def test_bench_suite_quick_run(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(REPO / "bench" / "suite.py"), "--quick", "--out", str(tmp_path),
         "--only", "single", "rss", "batching_low", "model_bound", "floor"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((tmp_path / "results.json").read_text())
    single = results["single"]
    assert single["protocols"]["swapserve"]["requests"] > 0
    assert all(p["errors"] == 0 for p in single["protocols"].values())
    assert single["floor_ms"] > 0 and single["floor_ratio"] > 0
    assert results["rss"]["swaps"] == 6 and results["rss"]["ratio"] > 0
    report = (tmp_path / "results.md").read_text()
    assert "| single request vs a minimal server making the same call |" in report
    assert "## Memory across swaps" in report
    low = results["batching_low"]["rows"]
    assert [row["clients"] for row in low] == [1, 4]
    assert all(row[m]["errors"] == 0 and row[m]["requests"] > 0
               for row in low for m in ("off", "eager", "timeout"))  # fmt: skip
    wide = results["model_bound"]
    assert wide["eager"]["errors"] == 0 and wide["off"]["errors"] == 0
    assert wide["in_process"]["1"]["p50_ms"] > 0 and wide["p99_bound_ms"] > 0
    assert wide["rps_needed_for_bound"] > 0 and wide["cycle_ms"] > 0
    assert "no request waits past two batch cycles" in report
    floor = results["floor"]
    assert floor["minimal"]["requests"] > 0 and floor["swapserve"]["requests"] > 0
    assert floor["cpu_us_per_request"]["minimal"] > 0 and floor["errors"] == {}
    # Request by request alternation: both arms answer the same number of requests.
    assert floor["minimal"]["requests"] == floor["swapserve"]["requests"]
    assert floor["same_server_ratios"]["minimal"]["p50"] > 0
    assert "identical minimal servers" in report
    assert set(floor["layers"]["p50_ms"]) == {"swapserve", "bookkeeping", "call-record", "minimal"}
    assert "Where the difference goes" in report
    assert "## Model-bound load" in report and "## Batching at low load" in report
