"""Checks deploy/grafana/swapserve.json: valid JSON in Grafana's dashboard shape, every panel
queried with PromQL, and every metric a query names exported by swapserve -- by the metric table
in docs/operations.md (``make lint``), or by a live scrape (tests/e2e/test_dashboard.py).

Usage: python deploy/grafana/check_dashboard.py [DASHBOARD] [--scrape FILE]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
_METRIC = re.compile(r"\b((?:swapserve|process|python)_[a-z0-9_]+)\b")
_SUFFIXES = ("_bucket", "_sum", "_count")


def queries(dashboard: dict[str, Any]) -> list[str]:
    """Every PromQL expression of the dashboard (panels, template variables, annotations)."""
    out = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    out += [v["query"] for v in dashboard["templating"]["list"] if v.get("type") == "query"]
    out += [a["expr"] for a in dashboard.get("annotations", {}).get("list", []) if a.get("expr")]
    return out


def problems(dashboard: dict[str, Any], exported: Iterable[str]) -> list[str]:
    """What is wrong with the dashboard, one line each (none: it is fine)."""
    known = set(exported)
    found = []
    ids = [p.get("id") for p in dashboard.get("panels", [])]
    if not ids or len(set(ids)) != len(ids):
        found.append(f"panel ids must be present and unique: {ids}")
    for panel in dashboard.get("panels", []):
        if not panel.get("targets") or not all(t.get("expr") for t in panel["targets"]):
            found.append(f"panel {panel.get('title')!r} has a target without a PromQL expr")
        if panel.get("datasource", {}).get("uid") != "${datasource}":
            found.append(f"panel {panel.get('title')!r} does not use the $datasource variable")
    for expr in queries(dashboard):
        if expr.count("(") != expr.count(")") or expr.count("{") != expr.count("}"):
            found.append(f"unbalanced brackets: {expr}")
        names = _METRIC.findall(expr)
        if not names:
            found.append(f"names no swapserve metric: {expr}")
        for name in names:
            base = next((name[: -len(s)] for s in _SUFFIXES if name.endswith(s)), name)
            if name not in known and base not in known:
                found.append(f"{name} is not exported (in: {expr})")
    return found


def documented() -> set[str]:
    """The metric names of docs/operations.md's table (process_/python_ families by prefix)."""
    text = (REPO / "docs" / "operations.md").read_text()
    names = set(re.findall(r"^\| `(swapserve_[a-z0-9_]+)`", text, re.MULTILINE))
    names |= {"process_resident_memory_bytes", "process_cpu_seconds_total"}
    return names


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dashboard", nargs="?", default=REPO / "deploy/grafana/swapserve.json")
    parser.add_argument("--scrape", type=Path, help="a /metrics scrape to check names against")
    args = parser.parse_args()
    dashboard = json.loads(Path(args.dashboard).read_text())
    if args.scrape:
        exported = set(re.findall(r"^([a-z_:][a-z0-9_:]*)", args.scrape.read_text(), re.M))
    else:
        exported = documented()
    found = problems(dashboard, exported)
    for line in found:
        sys.stderr.write(f"{args.dashboard}: {line}\n")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
