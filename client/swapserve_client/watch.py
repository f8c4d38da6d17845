"""``swapserve-client status --watch``: a model's versions (or every replica's view of it)
redrawn every few seconds, with per-version requests per second, errors and p99 during a
rollout."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

from swapserve_client.client import Client, ModelStatus
from swapserve_client.errors import SwapserveError


def fleet_table(model: str, answers: dict[str, ModelStatus | str]) -> str:
    """Every replica's view of a model side by side (``status --targets --watch``)."""
    lines = [
        f"model {model} on {len(answers)} replicas",
        f"{'REPLICA':<24} {'SERVING':>12} {'PINNED':>8} {'LOADED':<28} {'LABELS':<24} ERROR",
    ]
    for replica, status in answers.items():
        if isinstance(status, str):
            lines.append(f"{replica:<24} {'-':>12} {'-':>8} {'-':<28} {'-':<24} {status[:80]}")
            continue
        loaded = ",".join(str(v.version) for v in status.versions if v.state == "AVAILABLE")
        labels = ",".join(f"{k}={v}" for k, v in sorted(status.labels.items()))
        lines.append(
            f"{replica:<24} {status.serving_version or '-':>12} {status.pinned_version or '-':>8} "
            f"{loaded or '-':<28} {labels or '-':<24}"
        )
    return "\n".join(lines)


def fleet(
    replicas: list[str], options: dict[str, Any], model: str, seconds: float, count: int
) -> int:
    clients = [Client(r, retries=0, **options) for r in replicas]

    def one(client: Client) -> ModelStatus | str:
        try:
            return client.model_status(model)
        except SwapserveError as err:
            return f"{err.code.name}: {err.message}"

    def close() -> None:
        for client in clients:
            client.close()

    return refresh(
        lambda: fleet_table(model, dict(zip(replicas, map(one, clients), strict=True))),
        seconds,
        count,
        on_exit=close,
    )


def status_table(
    status: ModelStatus, now: float, before: tuple[float, ModelStatus] | None = None
) -> str:
    """A human-readable view of a model's versions (``status --watch``): per loaded version its
    requests per second (since ``before``, the previous frame), errors and p99 latency."""
    pin = f", pinned to {status.pinned_version}" if status.pinned_version else ""
    lines = [
        f"model {status.model}: serving {status.serving_version or 'nothing'}{pin}",
        f"{'VERSION':>12}  {'STATE':<10} {'SERVING':<7} {'REQ/S':>8} {'ERRORS':>7} "
        f"{'P99 ms':>8} {'LOAD s':>7} {'SINCE':>8}  {'LABELS':<16} ERROR",
    ]
    if status.storage_error:
        lines.insert(1, f"storage: {status.storage_error}")
    earlier = {v.version: v.request_count for v in before[1].versions} if before else {}
    for v in status.versions:
        since = f"{max(0.0, now - v.updated_unix):.0f}s" if v.updated_unix else "-"
        rate, errors, p99 = "-", "-", "-"
        if v.state in ("AVAILABLE", "UNLOADING"):
            errors, p99 = str(v.error_count), f"{v.p99_seconds * 1e3:.2f}"
            if before is not None and now > before[0]:
                done = v.request_count - earlier.get(v.version, 0)
                rate = f"{max(0, done) / (now - before[0]):.1f}"
        lines.append(
            f"{v.version:>12}  {v.state:<10} {'*' if v.serving else '':<7} {rate:>8} "
            f"{errors:>7} {p99:>8} {v.load_seconds:>7.3f} {since:>8}  "
            f"{','.join(v.labels) or '-':<16} {v.error[:80]}"
        )
    return "\n".join(lines)


def one(client: Client, model: str, seconds: float, count: int) -> int:
    previous: list[tuple[float, ModelStatus]] = []

    def frame() -> str:
        try:
            status, now = client.model_status(model), time.time()
        except SwapserveError as err:
            return f"{err.code.name}: {err.message}"
        text = status_table(status, now, previous[-1] if previous else None)
        previous[:] = [(now, status)]
        return text

    return refresh(frame, seconds, count)


def refresh(
    frame: Callable[[], str],
    seconds: float,
    count: int,
    on_exit: Callable[[], object] | None = None,
) -> int:
    """Redraws ``frame()`` every ``seconds`` until Ctrl-C (or ``count`` frames)."""
    shown = 0
    clear = "\x1b[H\x1b[2J" if sys.stdout.isatty() else ""
    try:
        while True:
            sys.stdout.write(f"{clear}{frame()}\n\n")
            sys.stdout.flush()
            shown += 1
            if count and shown >= count:
                return 0
            time.sleep(seconds)
    except KeyboardInterrupt:
        return 0
    finally:
        if on_exit is not None:
            on_exit()
