"""Where a saturated server's CPU goes per request: perf (native, kernel included) and py-spy
(Python frames), for one protocol at 16 callers.

    .venv/bin/python bench/profile_grpc.py [--protocol swapserve] [--seconds 5] [-- FLAGS...]

Starts one swapserve on the seed model (FLAGS are passed on, e.g. ``--active-threads 16``),
keeps 16 closed-loop callers on it (``bench/loadgen.py``) and, while they run: counts the
server's CPU and context switches per request; records ``perf record -e cpu-clock -g`` (Debian's
linux-perf; hardware counters are not exposed on this VM, the clock is); then samples the Python
stacks with ``py-spy``. Prints the per-request split in µs by part (kernel scheduling, gRPC
core, the interpreter, TensorFlow, protobuf, ...) and the Python time by module, as tables
docs/performance.md copies.
"""

from __future__ import annotations

import argparse
import glob
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import suite
from common import REST_PORTS, cpu_seconds, free_port, start_server, stop_server, wait_serving
from eager import summarise_stacks
from native import answered

_PARTS = [  # (part, regex over "dso symbol"), first match wins
    ("kernel: context switches and wake-ups",
     r"^\[kernel\S*\] (finish_task_switch|_raw_spin_unlock_irqrestore|__schedule|schedule|"
     r"futex|__futex|try_to_wake_up|ttwu|select_task_rq|enqueue_task|dequeue_task|pick_next)"),
    ("kernel: other (sockets, syscalls, interrupts)", r"^\[kernel"),
    ("gRPC core and its Cython layer", r"^cygrpc"),
    ("Python interpreter", r"^libpython"),
    ("TensorFlow (C++)", r"^(libtensorflow|_pywrap_tf|lib_pywrap_tensorflow)"),
    ("protobuf (upb)", r"^_message"),
    ("numpy", r"^_multiarray"),
    ("libc (malloc, locks, memcpy)", r"^(libc|libstdc|ld-linux|\[vdso\])"),
    ("HTTP stack (uvloop, aiohttp)", r"^(loop\.|_http_|_multidict|_asyncio|_yarl)"),
]  # fmt: skip


def _switches(pid: int) -> int:
    total = 0
    for status in glob.glob(f"/proc/{pid}/task/*/status"):
        try:
            text = Path(status).read_text()
        except OSError:
            continue
        total += sum(int(n) for n in re.findall(r"ctxt_switches:\s+(\d+)", text))
    return total


def perf_parts(pid: int, seconds: float, out: Path) -> dict[str, float] | None:
    """Share of cpu-clock samples by part, or None without a working perf."""
    if not shutil.which("perf"):
        return None
    data = out / "perf.data"
    subprocess.run(
        ["perf", "record", "-e", "cpu-clock", "-F", "2000", "-p", str(pid), "-o", str(data),
         "--", "sleep", str(seconds)],
        capture_output=True, check=False,
    )  # fmt: skip
    report = subprocess.run(
        ["perf", "report", "-i", str(data), "--stdio", "--no-children", "--sort", "dso,sym",
         "-g", "none"],
        capture_output=True, text=True, check=False,
    ).stdout  # fmt: skip
    shares: Counter[str] = Counter()
    for line in report.splitlines():
        m = re.match(r"\s*([\d.]+)%\s+(\S+)\s+\[[.k]\]\s+(.*)", line)
        if not m:
            continue
        key = f"{m.group(2)} {m.group(3).strip()}"
        part = next((p for p, rx in _PARTS if re.search(rx, key)), "other")
        shares[part] += float(m.group(1)) / 100
    return dict(shares) if shares else None


def py_spy_profile(pid: int, seconds: float, out: Path) -> dict[str, Any] | None:
    """py-spy samples of the working threads: the share of samples whose stack passes through
    each swapserve module, and the top leaf functions (``eager.summarise_stacks``)."""
    py_spy = Path(sys.executable).parent / "py-spy"
    if not py_spy.exists():
        return None
    raw = out / "spy.txt"
    subprocess.run(
        [str(py_spy), "record", "--nonblocking", "-p", str(pid), "-d", str(int(seconds)),
         "-r", "500", "-f", "raw", "-o", str(raw)],
        capture_output=True, check=False,
    )  # fmt: skip
    return summarise_stacks(raw.read_text()) if raw.exists() else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--protocol", default="swapserve")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("flags", nargs="*", help="swapserve flags (after --)")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="profile-"))
    s = suite.Suite(tmp / "out", quick=False, tmp=tmp)
    metrics_port = free_port()
    proc, port = start_server(
        s.root("p"), "--metrics-port", str(metrics_port), "--rest-port", "0", *args.flags
    )
    try:
        wait_serving(f"127.0.0.1:{port}")
        target = REST_PORTS[proc.pid] if args.protocol.endswith("_rest") else port
        loading = threading.Thread(
            target=s.load, args=(target, args.protocol, 16), kwargs={"duration": 5 * args.seconds}
        )
        loading.start()
        time.sleep(2.0)  # the generator's processes start and warm up
        calls = answered(metrics_port, None)
        cpu, switches = cpu_seconds(proc.pid), _switches(proc.pid)
        time.sleep(args.seconds)
        cpu, switches = cpu_seconds(proc.pid) - cpu, _switches(proc.pid) - switches
        calls = answered(metrics_port, None) - calls
        per_call, per_switch = 1e6 * cpu / calls, switches / calls
        spy = py_spy_profile(proc.pid, args.seconds, tmp)
        parts = perf_parts(proc.pid, args.seconds, tmp)
        loading.join()
    finally:
        stop_server(proc)
    print(f"{args.protocol} {' '.join(args.flags)}: {calls / args.seconds:.0f} calls/s, "
          f"{per_call:.0f} µs server CPU and {per_switch:.1f} context switches per call")  # fmt: skip
    if parts:
        print("\n| part (perf, cpu-clock) | share | µs per call |\n|---|---|---|")
        for part, share in sorted(parts.items(), key=lambda kv: -kv[1]):
            print(f"| {part} | {share:.1%} | {share * per_call:.0f} |")
    else:
        print("\n(perf is missing or cannot sample here)")
    if spy:
        print(f"\npy-spy: {spy['samples']} samples of working threads")
        for title, key in (("swapserve module on the stack", "module_share"),
                           ("innermost function", "top_leaf_share")):  # fmt: skip
            print(f"\n| {title} | share of samples |\n|---|---|")
            for name, share in spy[key].items():
                print(f"| {name} | {share:.1%} |")


if __name__ == "__main__":
    main()
