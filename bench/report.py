"""Markdown and PNG plots from the suite's results (``docs/benchmarks/``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import grpc_cost
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

#: Throughput and latency columns of a load run's summary, in table order.
_LATENCY_COLUMNS = ["throughput_rps", "p50_ms", "p99_ms", "p999_ms", "max_ms"]


def _goal(name: str, target: str, measured: str, met: bool | None) -> str:
    verdict = "n/a" if met is None else ("met" if met else "**not met**")
    return f"| {name} | {target} | {measured} | {verdict} |"


def goals(r: dict[str, Any]) -> list[str]:
    rows = ["| goal | target | measured | |", "|---|---|---|---|"]
    if single := r.get("single"):
        rows.append(
            _goal(
                "single request vs bare echo + in-process call (kept for reference)",
                "none: a sum of two separate floors, not a server; see the minimal-server rows",
                f"{single['protocols']['swapserve']['p50_ms']} ms vs {single['floor_ms']} ms "
                f"= {single['floor_ratio']}×",
                None,
            )
        )
        if single.get("http_ratio") is not None:
            rest = single["protocols"]["tfserving_rest"]["p50_ms"]
            rows.append(
                _goal(
                    "HTTP (TF Serving REST) single request",
                    "p50 ≤ 1.5 × our gRPC p50, same run",
                    f"{rest} ms vs {single['protocols']['swapserve']['p50_ms']} ms = "
                    f"{single['http_ratio']}×",
                    single["http_ratio"] <= 1.5,
                )
            )
        speedup = single.get("speedup_vs_estimator")
        est = single.get("estimator", {})
        rows.append(
            _goal(
                "vs `estimator.predict` per call",
                "≥ 100× faster",
                f"{est.get('p50_ms')} ms vs {single['protocols']['swapserve']['p50_ms']} ms = {speedup}×"
                if speedup
                else f"not run ({est.get('skipped') or est.get('failed')})",
                None if speedup is None else speedup >= 100,
            )
        )
    if mlp := r.get("mlp"):
        ratios = mlp.get("throughput_ratio_by_workers", {})
        ceilings = mlp.get("ceiling_by_workers", {})
        rows.append(
            _goal(
                "9 MiB MLP, 64 clients: batching throughput (kept for reference)",
                "none: RPC-bound here, the ceiling below is the most any batcher could gain",
                f"{mlp['batching']['throughput_rps']} vs {mlp['no_batching']['throughput_rps']} req/s "
                f"= {mlp['throughput_ratio']}×"
                + "".join(
                    f"; {w} workers: {ratio}×" for w, ratio in ratios.items() if str(w) != "1"
                )
                + (
                    "; ceiling here (a ~free model at the same load / MLP unbatched, "
                    "interleaved runs): "
                    + ", ".join(f"{w} worker(s) {c}×" for w, c in ceilings.items())
                    if ceilings
                    else ""
                ),
                None,
            )
        )
        rows.append(
            _goal(
                "9 MiB MLP with batching: p99",
                "≤ batch timeout + 2 model calls at max batch",
                f"{mlp['batching']['p99_ms']} ms vs bound {mlp['p99_bound_ms']} ms",
                bool(mlp["p99_within_bound"]),
            )
        )
    rows += _batching_goals(r)
    rows += grpc_cost.goal_rows(r, _goal)
    if swap := r.get("swap"):
        errors = swap["during_swaps"]["errors"]
        rows.append(
            _goal(
                "p99 during hot swaps (every 2 s)",
                "≤ 1.5 × steady p99, 0 failed",
                f"{swap['during_swaps']['p99_ms']} vs {swap['steady']['p99_ms']} ms = "
                f"{swap['p99_ratio']}×, {errors} failed, {swap['swaps']} swaps",
                swap["p99_ratio"] <= 1.5 and errors == 0,
            )
        )
    if storm := r.get("reload_storm"):
        served = storm["pin_served"]
        rows.append(
            _goal(
                f"Predict p99 under {storm['reload_loops']} Reload loops (pinning the served "
                "version)",
                "≤ 2 × p99 without Reloads, every Reload answered correctly",
                f"{served['with_reloads']['p99_ms']} vs {storm['without_reloads']['p99_ms']} ms "
                f"= {served['p99_ratio']}×; Reload answers {served['reloads']['answers']}",
                served["p99_ratio"] <= 2
                and set(served["reloads"]["answers"]) <= {"ok", "RESOURCE_EXHAUSTED"},
            )
        )
    if rss := r.get("rss"):
        marks = rss["rss_mib"]
        rows.append(
            _goal(
                f"RSS after {rss['swaps']} swaps",
                "within 10% of RSS after 2 swaps",
                f"{marks[str(rss['swaps'])] if str(rss['swaps']) in marks else marks[rss['swaps']]} vs "
                f"{marks.get('2', marks.get(2))} MiB = {rss['ratio']}×",
                rss["ratio"] <= 1.10,
            )
        )
    if ro := r.get("rollout"):
        worst = max((x for x in (ro["gating_p99_ratio"], ro["canary_p99_ratio"]) if x), default=0)
        rows.append(
            _goal(
                "Predict p99 while a version is gated / during its canary",
                "≤ 1.2 × steady p99, 0 errors",
                f"{ro['gating']['p99_ms']} / {ro['canary']['p99_ms']} vs {ro['steady']['p99_ms']} ms "
                f"= {ro['gating_p99_ratio']}× / {ro['canary_p99_ratio']}×, {ro['errors']} errors",
                worst <= 1.2 and ro["errors"] == 0,
            )
        )
    if (wr := r.get("workers_rss")) and "onednn_off" in wr:
        off, pooled = wr["onednn_off"], wr["onednn_default"]
        rows.append(
            _goal(
                f"Peak RSS above steady, {wr['workers']} workers swapping a "
                f"{wr['model_mib']} MiB model",
                "≈ 1 model (one worker at a time), not 2",
                f"{pooled['peak_above_steady_models']} models with TensorFlow's default oneDNN "
                "allocator (it pools what a released version frees); "
                f"{off['peak_above_steady_models']} with TF_ENABLE_ONEDNN_OPTS=0",
                pooled["peak_above_steady_models"] < 1.5,
            )
        )
    if mls := r.get("mlserver"):
        rows.append(
            _goal(
                "vs MLServer (same model, V2, same load)",
                "higher throughput, lower p99",
                mls.get("summary", "not run"),
                mls.get("met"),
            )
        )
    return rows


def _batching_goals(r: dict[str, Any]) -> list[str]:
    rows = []
    if low := r.get("batching_low"):
        for row in low["rows"]:
            rows.append(
                _goal(
                    f"seed model, {row['clients']} client(s): eager batching p50",
                    "≤ 1.1 × batching off, same run",
                    f"{row['eager']['p50_ms']} vs {row['off']['p50_ms']} ms = "
                    f"{row['eager_p50_ratio']}× (timeout mode, 500 µs: {row['timeout_p50_ratio']}×)",
                    row["eager_p50_ratio"] <= 1.1,
                )
            )
    if wide := r.get("model_bound"):
        ip = wide["in_process"]
        full = str(wide["clients"])
        rows.append(
            _goal(
                f"{wide['weights_mib']} MiB wide MLP, {wide['clients']} clients: eager batching "
                "throughput",
                "≥ 3 × unbatched",
                f"{wide['eager']['throughput_rps']} vs {wide['off']['throughput_rps']} req/s = "
                f"{wide['throughput_ratio']}× (in-process: 1 row {ip['1']['p50_ms']} ms, "
                f"{full} rows {ip[full]['p50_ms']} ms)",
                wide["throughput_ratio"] >= 3,
            )
        )
        floor_note = ""
        if "rps_needed_for_bound" in wide:
            floor_note = (
                f"; needs ≥ {wide['rps_needed_for_bound']} req/s (Little's law), best measured "
                f"{max(wide['eager']['throughput_rps'], wide['eager_2_threads']['throughput_rps'])}"
                " req/s"
            )
        rows.append(
            _goal(
                "wide MLP with eager batching: p99 (issue 17's bound)",
                "≤ 2 × (batch wait bound 0 + one max-size call + unbatched 1-client round trip)",
                f"{wide['eager']['p99_ms']} ms vs bound {wide['p99_bound_ms']} ms{floor_note}",
                bool(wide["p99_within_bound"]),
            )
        )
        if "cycle_ms" in wide:
            rows.append(
                _goal(
                    "wide MLP with eager batching: p99 (proposed: no request waits past two "
                    "batch cycles)",
                    "≤ 2 × the closed-loop mean (clients / throughput)",
                    f"{wide['eager']['p99_ms']} ms vs 2 × {wide['cycle_ms']} ms",
                    bool(wide["p99_within_2_cycles"]),
                )
            )
    if floor := r.get("floor"):
        cpu = floor["cpu_us_per_request"]
        same = floor["same_server_ratios"]
        blocks = floor["block_p50_ratio"]
        rows.append(
            _goal(
                "single request vs a minimal server making the same call",
                "p50 ≤ 1.10 × the minimal server's",
                f"{floor['swapserve']['p50_ms']} vs {floor['minimal']['p50_ms']} ms = "
                f"{floor['p50_ratio']}× (per block of 50: {blocks['min']}–{blocks['max']}×; "
                f"two identical minimal servers: {same['minimal']['p50']}×)",
                floor["p50_ratio"] <= 1.10,
            )
        )
        rows.append(
            _goal(
                "server CPU per request vs the minimal server",
                "≤ 1.15 × the minimal server's",
                f"{cpu['swapserve']} vs {cpu['minimal']} µs = {floor['cpu_ratio']}× "
                f"(identical minimal servers: {same['minimal']['cpu']}×)",
                floor["cpu_ratio"] <= 1.15,
            )
        )
    return rows


def batching_sections(r: dict[str, Any]) -> list[str]:
    """Markdown for the batching_low, model_bound and floor scenarios."""
    lines: list[str] = []
    if low := r.get("batching_low"):
        rows = [
            {"clients": row["clients"], "mode": mode, **row[mode]}
            for row in low["rows"]
            for mode in ("off", "eager", "timeout")
        ]
        lines += [
            f"## Batching at low load (seed model; {low['rounds']} interleaved rounds)",
            "",
            "`off`: no batching; `eager`: the default batcher; `timeout`: TF Serving's batcher "
            "with `--batch-timeout-micros 500`.",
            "",
            *_table(rows, ["clients", "mode", "throughput_rps", "p50_ms", "p99_ms", "errors"]),
            "",
        ]
    if wide := r.get("model_bound"):
        ip = wide["in_process"]
        lines += [
            f"## Model-bound load ({wide['weights_mib']} MiB MLP, 3 × 2048-wide layers)",
            "",
            "In-process `LoadedVersion.run` per call: "
            + ", ".join(f"{rows} row(s) {v['p50_ms']} ms" for rows, v in ip.items())
            + f"; {wide['clients']} one-row calls cost {wide['batch_economy']}× one "
            f"{wide['clients']}-row call. Unbatched single-client round trip: "
            f"{wide['single_client_p50_ms']} ms.",
            "",
            *(
                [
                    f"What the p99 bound asks: {wide['clients']} closed-loop clients see a mean "
                    f"latency of clients / throughput (Little's law) and p99 ≥ mean, so p99 ≤ "
                    f"{wide['p99_bound_ms']} ms needs ≥ {wide['rps_needed_for_bound']} req/s "
                    f"on this {wide['cores']}-core box (load generator included).",
                    "",
                ]
                if "rps_needed_for_bound" in wide
                else []
            ),
            *_table(
                [
                    {"batching": "off", **wide["off"]},
                    {"batching": "eager, 1 batch thread", **wide["eager"]},
                    {"batching": "eager, 2 batch threads", **wide.get("eager_2_threads", {})},
                ],
                ["batching", "throughput_rps", "p50_ms", "p99_ms", "errors"],
            ),
            "",
        ]
    if floor := r.get("floor"):
        cpu = floor["cpu_us_per_request"]
        same = floor["same_server_ratios"]
        blocks = floor["block_p50_ratio"]
        lines += [
            "## Floor: a minimal server making the same call",
            "",
            "`bench/floor_server.py`: decode, `LoadedVersion.run`, encode on a `grpc.server` "
            f"thread pool. Method: {floor['method']} ({floor['seconds']} s measured); server CPU "
            "per request from /proc over the same seconds. Per block of 50 rounds the ratio of "
            f"the medians ranged {blocks['min']}–{blocks['max']}× (median {blocks['median']}×, "
            f"{blocks['blocks']} blocks). Identical processes side by side measured "
            f"{same['minimal']['p50']}× p50 / {same['minimal']['cpu']}× CPU (minimal) and "
            f"{same['swapserve']['p50']}× / {same['swapserve']['cpu']}× (swapserve): the "
            "method's own error.",
            "",
            *_table(
                [
                    {"server": name, **floor[name], "server CPU µs/request": cpu[name]}
                    for name in ("minimal", "swapserve")
                ],
                ["server", "requests", "p50_ms", "p90_ms", "p99_ms", "server CPU µs/request"],
            ),
            "",
        ]
        if layers := floor.get("layers"):
            lines += [
                "Where the difference goes: swapserve with layers taken out "
                "(`bench/ablated_server.py`) in the same alternation; each row is the step from "
                "one server to the next without that layer.",
                "",
                *_table(
                    [{"layer": k, **v} for k, v in layers["cost"].items()],
                    ["layer", "p50_us", "cpu_us"],
                ),
                "",
            ]
        prof = floor.get("profile", {})
        if prof.get("module_share"):
            lines += [
                f"py-spy profile of swapserve under this load ({prof['samples']} samples of "
                "working threads): share of samples whose stack passes through each module",
                "",
                *_table(
                    [{"module": m, "share": v} for m, v in prof["module_share"].items()],
                    ["module", "share"],
                ),
                "",
                "Top leaf functions:",
                "",
                *_table(
                    [{"function": f, "share": v} for f, v in prof["top_leaf_share"].items()],
                    ["function", "share"],
                ),
                "",
            ]
    return lines


def _table(rows: list[dict[str, Any]], cols: list[str]) -> list[str]:
    out = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    out += ["| " + " | ".join(str(row.get(c, "")) for c in cols) + " |" for row in rows]
    return out


def write(r: dict[str, Any], out: Path) -> None:
    m = r["machine"]
    lines = [
        "# Benchmarks",
        "",
        f"Produced by `{r['command']}` on {m['cpus']} CPUs ({m['processor']}, {m['platform']}, "
        f"Python {m['python']}). Server and load generator share the machine; the load generator "
        "(`bench/loadgen.py`: closed loop, `grpc.aio`, pre-serialized requests, 1–2 processes) "
        "reports its own CPU use. Raw data: `results.json`.",
        "",
        "## Goals",
        "",
        *goals(r),
        "",
    ]
    if single := r.get("single"):
        lines += ["## Single request (seed model)", ""]
        rows = [
            {
                "path": "in-process `LoadedVersion.run`",
                "p50 ms": single["in_process"]["p50_ms"],
                "p99 ms": single["in_process"]["p99_ms"],
            },
            {
                "path": "bare Python gRPC echo, same payload",
                "p50 ms": single["grpc_echo"]["p50_ms"],
                "p99 ms": single["grpc_echo"]["p99_ms"],
            },
        ]
        for proto, s in single["protocols"].items():
            rows.append(
                {
                    "path": f"swapserve, {proto} protocol"
                    + (" (HTTP/1.1)" if proto.endswith("_rest") else " (gRPC)"),
                    "p50 ms": s["p50_ms"],
                    "p99 ms": s["p99_ms"],
                    "client CPU %": s["client_cpu_percent"],
                }
            )
        est = single.get("estimator", {})
        if est.get("p50_ms"):
            rows.append(
                {
                    "path": "`estimator.predict`, one-example input_fn per call (TF 2.15)",
                    "p50 ms": est["p50_ms"],
                    "p99 ms": est.get("p99_ms", ""),
                }
            )
        lines += [*_table(rows, ["path", "p50 ms", "p99 ms", "client CPU %"]), ""]
    lines += batching_sections(r)
    if sweep := r.get("sweep"):
        lines += [
            "## Concurrency sweep (seed model, swapserve protocol)",
            "",
            "![latency vs concurrency](latency_vs_concurrency.png)",
            "",
        ]
        lines += [
            *_table(
                sweep["rows"],
                [
                    "workers",
                    "batching",
                    "clients",
                    "throughput_rps",
                    "p50_ms",
                    "p99_ms",
                    "errors",
                    "client_cpu_percent",
                ],
            ),
            "",
        ]
        _plot_sweep(sweep["rows"], out / "latency_vs_concurrency.png")
    if swap := r.get("swap"):
        lines += [
            f"## Hot swap every {swap['swap_every_s']} s under load ({swap['clients']} clients)",
            "",
            "![latency over time](latency_during_swaps.png)",
            "",
        ]
        rows = [
            {"phase": "steady", **swap["steady"]},
            {"phase": f"{swap['swaps']} swaps", **swap["during_swaps"]},
        ]
        lines += [
            *_table(
                rows,
                ["phase", "requests", "errors", *_LATENCY_COLUMNS],
            ),
            "",
        ]
        _plot_swap(swap, out / "latency_during_swaps.png")
    if storm := r.get("reload_storm"):
        rows = [{"phase": "no Reloads", **storm["without_reloads"]}]
        for name, what in (("pin_served", "the served version"), ("pin_older", "the older one")):
            run = storm[name]
            rows.append(
                {
                    "phase": f"{storm['reload_loops']} Reload loops, "
                    f"{storm['pinning_loops']} pinning {what}",
                    **run["with_reloads"],
                    "Reload answers": run["reloads"]["answers"],
                    "Reload p50/p99 ms": f"{run['reloads']['p50_ms']} / {run['reloads']['p99_ms']}",
                }
            )
        lines += [
            f"## Reload storm ({storm['clients']} predicting clients)",
            "",
            "Reload loops back off 100 ms after RESOURCE_EXHAUSTED (past `--max-admin-rpcs`). "
            "Pinning the older version makes every pin/unpin alternation a real model load.",
            "",
            *_table(
                rows,
                [
                    "phase",
                    "requests",
                    "errors",
                    "throughput_rps",
                    "p50_ms",
                    "p99_ms",
                    "Reload answers",
                    "Reload p50/p99 ms",
                ],
            ),
            "",
        ]
    if ro := r.get("rollout"):
        lines += [
            f"## Safe rollout ({ro['clients']} clients, canary {ro['canary_percent']}% for "
            f"{ro['canary_seconds']} s, {ro['rounds']} exports)",
            "",
            *_table(
                [
                    {"phase": "steady (before the first export)", **ro["steady"]},
                    {"phase": "a version being gated", **ro["gating"]},
                    {"phase": "its canary", **ro["canary"]},
                ],
                ["phase", "requests", "p50_ms", "p99_ms"],
            ),
            "",
            f"Gates on the seed model: {ro['gate_seconds']} s for {ro['gate_requests']} "
            "requests (sample + warm-up), each version and the serving one run alternately.",
            "",
        ]
    lines += grpc_cost.section(r, _table)
    if nl := r.get("native_loadgen"):
        lines += [
            f"## Load generators: Python and native ({nl['clients']} callers, {nl['rounds']} "
            "rounds alternated, one server)",
            "",
            "The same swapserve Predict on the seed model, saturated by `bench/loadgen.py` "
            "(grpc.aio, 2 processes) and by the Go client `examples/go -load` (one connection "
            "per caller). CPU per request from the generator's own rusage and the server's "
            "/proc; both share 2 cores with the server.",
            "",
            *_table(
                [{"generator": g, **nl[g]} for g in ("python", "go")],
                [
                    "generator",
                    "rps",
                    "p50_ms",
                    "p99_ms",
                    "client_cpu_us",
                    "server_cpu_us",
                    "errors",
                    "rps_by_round",
                ],
            ),
            "",
            "Go / Python: "
            + ", ".join(f"{k} ×{v}" for k, v in nl["ratios_go_over_python"].items()),
            "",
        ]
    if (wr := r.get("workers_rss")) and "onednn_off" in wr:
        lines += [
            f"## {wr['workers']} workers swapping a {wr['model_mib']} MiB model",
            "",
            "Workers load and swap one at a time. Summed worker RSS (MiB), sampled every 10 ms:",
            "",
            *_table(
                [{"allocator": k, **wr[k]} for k in ("onednn_default", "onednn_off")],
                [
                    "allocator",
                    "steady_rss_sum_mib",
                    "peak_rss_sum_mib",
                    "after_rss_sum_mib",
                    "peak_above_steady_models",
                ],
            ),
            "",
        ]
    if rss := r.get("rss"):
        lines += [
            "## Memory across swaps",
            "",
            *_table(
                [{"after swaps": k, "RSS MiB": v} for k, v in rss["rss_mib"].items()],
                ["after swaps", "RSS MiB"],
            ),
            "",
        ]
    if mlp := r.get("mlp"):
        lines += [
            f"## MLP 256→1024→1024→1024 ({mlp['weights_mib']} MiB of weights), "
            f"{mlp['clients']} clients",
            "",
        ]
        rows = mlp.get("runs") or [
            {"workers": 1, "batching": False, **mlp["no_batching"]},
            {"workers": 1, "batching": True, **mlp["batching"]},
        ]
        lines += [
            *_table(
                rows,
                [
                    "workers",
                    "batching",
                    "throughput_rps",
                    "p50_ms",
                    "p99_ms",
                    "errors",
                    "client_cpu_percent",
                ],
            ),
            "",
            f"In-process model call: {', '.join(f'batch {k}: {v:.2f} ms' for k, v in mlp['in_process_call_ms'].items())}. "
            f"Load + warm-up of version 1: {mlp.get('load_seconds_v1', 0):.3f} s; a swap's "
            f"load under load: {mlp.get('swap_load_seconds')} s.",
            "",
        ]
    if svc := r.get("servicer"):
        lines += [
            "## Servicer model: sync thread pool vs grpc.aio",
            "",
            "Minimal servers whose one method runs the seed model and echoes the request "
            "(`bench/servicer_models.py`).",
            "",
            *_table(
                svc["rows"],
                [
                    "servicer",
                    "clients",
                    "throughput_rps",
                    "p50_ms",
                    "p99_ms",
                    "errors",
                    "client_cpu_percent",
                ],
            ),
            "",
        ]
    if caller := r.get("caller"):
        lines += [
            "## Where the graph runs: `--run-thread` (pool, caller, auto)",
            "",
            "In-process, one call's median ms in TensorFlow's inter-op pool and in the calling "
            "thread, back to back and with 1 ms idle pauses, and what `auto` picks at load for "
            "a model run at that many rows:",
            "",
            *_table(
                caller.get("in_process", []),
                [
                    "model",
                    "rows",
                    "pool_ms",
                    "caller_ms",
                    "pool_ms_1ms_pauses",
                    "caller_ms_1ms_pauses",
                    "auto_picks",
                ],
            ),
            "",
            "The seed model served each way, all servers up at once, runs interleaved; medians "
            "over rounds"
            + (f" (produced by `{caller['command']}`)." if caller.get("command") else "."),
            "",
            *_table(
                caller["rows"],
                [
                    "run_thread",
                    "clients",
                    "rounds",
                    "median_p50_ms",
                    "median_p99_ms",
                    "median_throughput_rps",
                ],
            ),
            "",
        ]
    if gcr := r.get("gc"):
        lines += [
            f"## Full garbage collections under load (MLP, V2, batching, {gcr['clients']} clients)",
            "",
            "The server with its start-up `gc.freeze` and with the freeze turned off "
            "(`bench/gc_pauses.py`); collections of generation 2 that started during the run:",
            "",
            *_table(
                gcr["rows"],
                ["gc_freeze", "full_collections", "longest_collection_ms", *_LATENCY_COLUMNS],
            ),
            "",
        ]
    if mls := r.get("mlserver"):
        lines += ["## Peer: MLServer (same model, same V2 load generator)", ""]
        if mls.get("rows"):
            lines += [
                *_table(
                    mls["rows"],
                    [
                        "model",
                        "server",
                        "transport",
                        "clients",
                        "batching",
                        "throughput_rps",
                        "p50_ms",
                        "p99_ms",
                        "errors",
                    ],
                ),
                "",
            ]
        lines += [mls["summary"], ""]
    if stacks := r.get("http_stack"):
        lines += [
            "## HTTP stack choice (the same TF Serving-style handler, `bench/http_stacks.py`)",
            "",
            "Each server parses the JSON body, runs 0.5x + 2 on a thread pool and encodes the "
            "answer; Starlette runs on uvicorn with httptools. Medians over interleaved rounds; "
            "server CPU per request from /proc (warm-up included).",
            "",
        ]
        if stacks.get("rows"):
            cols = ["stack", "json", "clients", "rounds", "throughput_rps", "p50_ms", "p99_ms"]
            lines += [*_table(stacks["rows"], [*cols, "server_cpu_us_per_request"]), ""]
        lines += [stacks["summary"], ""]
    (out / "results.md").write_text("\n".join(lines))


def _plot_sweep(rows: list[dict[str, Any]], path: Path) -> None:
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for workers in sorted({row["workers"] for row in rows}):
        for batching in (False, True):
            sel = [row for row in rows if row["workers"] == workers and row["batching"] == batching]
            if not sel:
                continue
            label = f"{workers} worker{'s' if workers > 1 else ''}, batching {'on' if batching else 'off'}"
            xs = [row["clients"] for row in sel]
            axes[0].plot(xs, [row["p99_ms"] for row in sel], marker="o", label=label)
            axes[1].plot(xs, [row["throughput_rps"] for row in sel], marker="o", label=label)
    axes[0].set(xscale="log", xlabel="concurrent clients", ylabel="p99 latency (ms)")
    axes[1].set(xscale="log", xlabel="concurrent clients", ylabel="throughput (req/s)")
    axes[0].legend(fontsize=8)
    fig.suptitle("seed model: latency and throughput vs concurrency")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _plot_swap(swap: dict[str, Any], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(9, 4))
    series = swap["series"]
    ax.plot([p["t"] for p in series], [p["p99_ms"] for p in series], label="p99 (0.5 s buckets)")
    ax.plot([p["t"] for p in series], [p["p50_ms"] for p in series], label="p50")
    ax.axhline(swap["steady"]["p99_ms"], color="gray", linestyle="--", label="steady p99")
    for i, t in enumerate(swap["published_at_s"]):
        ax.axvline(t, color="red", alpha=0.3, label="new version exported" if i == 0 else None)
    ax.set(xlabel="seconds", ylabel="latency (ms)", title="Predict latency across hot swaps")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
