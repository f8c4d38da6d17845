"""The gRPC path's cost scenario of ``make bench`` (issue 34), registered in ``suite.SCENARIOS``.

grpc_cost -- two swapservers on the seed model, up at once: today's defaults
             (``--active-threads 16``: every RPC thread takes calls, as the plain 16-thread
             pool did) and the new ones (2 active threads). Each is saturated by 16 closed-loop
             callers over every API -- swapserve v1, TF Serving and V2 over gRPC, TF Serving
             REST and V2 over HTTP, and swapserve v1 from the Go generator -- in runs rotated
             over rounds so that every cell sees the machine's slow and fast spells alike. Per
             cell: throughput, p50/p99, client CPU per request (the generator's rusage) and
             server CPU per request (/proc, over the requests the server counted).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from common import REST_PORTS, free_port, start_server, stop_server, wait_serving
from native import ServerCost, build_go, go_load, python_row

if TYPE_CHECKING:
    from suite import Suite

CLIENTS = 16
SERVERS = {"today": ("--active-threads", "16"), "now": ()}
GRPC = ("swapserve", "tfserving", "v2")
HTTP = {"tfserving": "tfserving_rest", "v2": "v2_rest"}
"""Each gRPC API's HTTP counterpart, for the CPU ratio (swapserve v1 is compared with TF
Serving's REST ``:predict``, the HTTP call most users make)."""

LOADS = (*GRPC, "tfserving_rest", "v2_rest", "go")
METRICS = ("rps", "p50_ms", "p99_ms", "client_cpu_us", "server_cpu_us")


def _one(s: Suite, go: Path, server: dict[str, Any], load: str) -> dict[str, float]:
    cost = ServerCost(server["proc"].pid, server["metrics_port"], method=None)  # every API
    cost.start()
    if load == "go":
        row = go_load(go, server["port"], s.seconds)
    else:
        port = server["rest_port"] if load.endswith("_rest") else server["port"]
        row = python_row(s.load(port, load, CLIENTS))
    row["server_cpu_us"] = cost.stop()
    return row


def scenario_grpc_cost(s: Suite) -> dict[str, Any]:
    go = build_go(s.tmp / "go-cost")
    rounds = 2 if s.quick else 3
    servers: dict[str, dict[str, Any]] = {}
    try:
        for name, flags in SERVERS.items():
            metrics_port = free_port()
            proc, port = start_server(
                s.root(f"cost-{name}"), "--metrics-port", str(metrics_port), "--rest-port", "0",
                *flags,
            )  # fmt: skip
            servers[name] = {"proc": proc, "port": port, "metrics_port": metrics_port,
                             "rest_port": REST_PORTS[proc.pid]}  # fmt: skip
        for server in servers.values():
            wait_serving(f"127.0.0.1:{server['port']}")
        cells = [(name, load) for load in LOADS for name in servers]
        runs: dict[tuple[str, str], list[dict[str, float]]] = {c: [] for c in cells}
        for r in range(rounds):
            shift = (r * 3) % len(cells)  # each round starts elsewhere in the rotation
            for name, load in cells[shift:] + cells[:shift]:
                runs[(name, load)].append(_one(s, go, servers[name], load))
    finally:
        for server in servers.values():
            stop_server(server["proc"])
    rows = []
    for (name, load), rs in runs.items():
        row: dict[str, Any] = {"server": name, "load": load}
        row.update({k: round(sorted(x[k] for x in rs)[len(rs) // 2], 3) for k in METRICS})
        row["errors"] = sum(x["errors"] for x in rs)
        row["rps_by_round"] = [round(x["rps"], 1) for x in rs]
        rows.append(row)
    return {"clients": CLIENTS, "rounds": rounds, "rows": rows, **_ratios(rows)}


def _ratios(rows: list[dict[str, Any]]) -> dict[str, Any]:
    cell = {(r["server"], r["load"]): r for r in rows}
    cpu_vs_http = {
        api: round(
            cell[("now", api)]["server_cpu_us"]
            / cell[("now", HTTP.get(api, "tfserving_rest"))]["server_cpu_us"],
            3,
        )
        for api in (*GRPC, "go")
    }
    speedup = {
        load: round(cell[("now", load)]["rps"] / cell[("today", load)]["rps"], 3) for load in LOADS
    }
    cpu_cut = {
        load: round(
            cell[("now", load)]["server_cpu_us"] / cell[("today", load)]["server_cpu_us"], 3
        )
        for load in LOADS
    }
    return {"cpu_grpc_over_http": cpu_vs_http, "rps_now_over_today": speedup,
            "cpu_now_over_today": cpu_cut}  # fmt: skip


def goal_rows(r: dict[str, Any], goal: Any) -> list[str]:
    """The issue's two goals, one row each (``goal`` is report.py's row formatter)."""
    gc = r.get("grpc_cost")
    if not gc:
        return []
    cpu, rps = gc["cpu_grpc_over_http"], gc["rps_now_over_today"]
    return [
        goal(
            "server CPU per gRPC call vs per HTTP call (seed model, 16 callers)",
            "≤ 1.0× (swapserve v1 and TF Serving gRPC vs REST `:predict`, V2 gRPC vs V2 HTTP)",
            f"swapserve {cpu['swapserve']}× (Go generator {cpu['go']}×), TF Serving "
            f"{cpu['tfserving']}×, V2 {cpu['v2']}×",
            max(cpu[k] for k in GRPC) <= 1.0,
        ),
        goal(
            "gRPC throughput at 16 callers vs today's defaults (`--active-threads 16`)",
            "≥ 1.5× for every gRPC API",
            ", ".join(f"{k} {rps[k]}×" for k in (*GRPC, "go")),
            min(rps[k] for k in (*GRPC, "go")) >= 1.5,
        ),
    ]


def section(r: dict[str, Any], table: Any) -> list[str]:
    """The scenario's table (``table`` is report.py's markdown table)."""
    gc = r.get("grpc_cost")
    if not gc:
        return []
    return [
        f"## The gRPC path's cost: today's defaults and the new ones ({gc['clients']} callers, "
        f"median of {gc['rounds']} rotated rounds)",
        "",
        "Two servers on the seed model, up at once; `today` is `--active-threads 16` (every RPC "
        "thread takes calls, as the plain pool did), `now` the defaults (2). `go` is swapserve "
        "v1 from the Go generator (one connection per caller); the others come from "
        "`bench/loadgen.py`. CPU per request: the generator's rusage, the server's /proc.",
        "",
        *table(gc["rows"], ["server", "load", *METRICS, "errors", "rps_by_round"]),
        "",
        f"Server CPU per call, gRPC / HTTP (`now`): {gc['cpu_grpc_over_http']}. Throughput "
        f"now / today: {gc['rps_now_over_today']}. Server CPU per call now / today: "
        f"{gc['cpu_now_over_today']}.",
        "",
    ]
