"""Per-version call statistics: what KServe V2's ``ModelStatistics`` and swapserve's
``GetModelStatus`` report, kept beside the Prometheus series and dropped with them when a version
is released (a long-lived server's statistics do not grow with every export)."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from copy import copy
from dataclasses import dataclass, field, replace

from swapserve.observability.calls import OK_CODES, CallRecord

_RECENT = 1024
"""Latencies kept per version for its p99 (the most recent successful calls)."""


@dataclass(slots=True)
class Duration:
    """A count and a total duration in nanoseconds (V2's ``StatisticDuration``). Mutable:
    updated in place under ``Statistics``' lock on every call; readers get copies."""

    count: int = 0
    ns: int = 0

    def add(self, seconds: float) -> None:
        self.count += 1
        self.ns += int(seconds * 1e9)


@dataclass
class VersionStats:
    """One loaded version's calls since it loaded."""

    success: Duration = field(default_factory=Duration)
    """Calls answered OK and their end-to-end time."""
    fail: Duration = field(default_factory=Duration)
    """Calls this version took that failed (bad input for its signature, a failed run)."""
    queue: Duration = field(default_factory=Duration)
    """Time successful calls waited for their batch."""
    compute: Duration = field(default_factory=Duration)
    """Time in the model run for successful calls."""
    inference_count: int = 0
    """Rows answered (V2's inference count: a batch of 8 rows counts 8)."""
    execution_count: int = 0
    """Model runs (a batch counts once)."""
    last_inference_ms: int = 0
    """When the last call was answered, in ms since the epoch (0: never)."""
    last_error_ms: int = 0
    """When the last call failed, in ms since the epoch (0: never)."""
    recent: deque[float] = field(default_factory=lambda: deque(maxlen=_RECENT))

    @property
    def p99_seconds(self) -> float:
        """The 99th percentile of the recent successful calls' latency (0: none yet)."""
        if not self.recent:
            return 0.0
        ordered = sorted(self.recent)
        return ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]


class Statistics:
    """Statistics by (model, version), updated from finished calls and model runs."""

    def __init__(self, executions: Callable[[str, int], int] = lambda model, version: 0) -> None:
        self._executions = executions
        """A version's model runs, kept by the run metrics (a run is counted once, there)."""
        self._lock = threading.Lock()  # guards _stats
        self._stats: dict[tuple[str, int], VersionStats] = {}

    def called(self, record: CallRecord) -> None:
        """Counts a finished call against the version that took it (none: not counted).
        Written out rather than through ``Duration.add``: this runs on every call."""
        if not record.version or not record.model:
            return
        now = int(time.time() * 1000)
        key = (record.model, record.version)
        seconds = record.seconds
        with self._lock:
            s = self._stats.get(key) or self._stats.setdefault(key, VersionStats())
            if record.code in OK_CODES:
                d = s.success
                d.count += 1
                d.ns += int(seconds * 1e9)
                d = s.queue
                d.count += 1
                d.ns += int(record.queue_seconds * 1e9)
                d = s.compute
                d.count += 1
                d.ns += int(record.run_seconds * 1e9)
                s.inference_count += record.rows
                s.last_inference_ms = now
                s.recent.append(seconds)
            else:
                s.fail.add(seconds)
                s.last_error_ms = now

    def get(self, model: str, version: int) -> VersionStats:
        """A copy of one version's statistics (zeros if it took no call)."""
        executions = self._executions(model, version)
        with self._lock:
            found = self._stats.get((model, version))
            if found is None:
                return VersionStats(execution_count=executions)
            return replace(
                found,
                success=copy(found.success),
                fail=copy(found.fail),
                queue=copy(found.queue),
                compute=copy(found.compute),
                recent=deque(found.recent, maxlen=_RECENT),
                execution_count=executions,
            )

    def forget(self, model: str, version: int) -> None:
        """Drops a released version."""
        with self._lock:
            self._stats.pop((model, version), None)

    def forget_model(self, model: str) -> None:
        """Drops every version of a removed model."""
        with self._lock:
            for key in [k for k in self._stats if k[0] == model]:
                del self._stats[key]
