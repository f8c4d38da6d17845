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
         "--only", "single", "rss"],
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
    assert "| single request vs floor |" in report
    assert "## Memory across swaps" in report
