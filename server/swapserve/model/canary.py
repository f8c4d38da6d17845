"""The canary's rules: who is diverted to it, what it is watched for, when it is promoted or
rolled back. ``diverted`` and ``judge`` are pure; ``Watch`` counts one version's live answers.

During a canary both the canary and the previous version carry a ``Watch``: every answer notes
its run time, whether the run failed on the server's side and whether it held a NaN or Inf.
``judge`` compares the two and decides. The previous version is the yardstick, so a model whose
inputs sometimes make it fail (or answer NaN) is held to its own record, not to perfection.
"""

from __future__ import annotations

import threading
import time
import zlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from swapserve.config.rollout_settings import RolloutSettings
from swapserve.model.gates import LATENCY_FLOOR_SECONDS, percentile

WATCH_LATENCIES = 8192
"""Most recent run times a watch keeps for its p99."""


def diverted(share: float, key: str, draw: float) -> bool:
    """Whether a request goes to the canary: by its routing key when it has one (the same key
    always lands on the same side: CRC-32 of the key against the share), else by ``draw``
    (uniform in [0, 1))."""
    if key:
        return zlib.crc32(key.encode("utf-8", "surrogatepass")) / 2**32 < share
    return draw < share


@dataclass(frozen=True)
class WatchStats:
    """One version's answers during a canary."""

    requests: int = 0
    """Runs (answered or failed; requests its signature refused are not counted)."""
    errors: int = 0
    nonfinite: int = 0
    p99: float = 0.0
    timed: int = 0


class Watch:
    """Live counts of one version during a canary; thread-safe (request threads note).

    Run times are kept with when they ended, so two watches are compared over the same span of
    time (``compared``): the previous version, answering most requests, fills its buffer in a
    fraction of the time the canary takes, and a canary's p99 over ten seconds against the
    previous version's over the last two measured contention the previous version had
    forgotten (a good export was rolled back at 3x under a CPU-bound neighbour). The first run
    on each request thread is counted but not timed: it pays one-time per-thread setup
    (measured in-process: 0.04-0.08 ms, then 0.012-0.021 ms).
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self.started = clock()  # immutable: when the canary began
        self._lock = threading.Lock()  # guards the counts, the run times and the threads seen
        self._requests = self._errors = self._nonfinite = 0  # guarded by _lock
        self._times: deque[tuple[float, float]] = deque(maxlen=WATCH_LATENCIES)  # guarded by
        # _lock: (when it ended, seconds)
        self._threads: set[int] = set()  # guarded by _lock: threads whose first run was noted

    def note(
        self,
        seconds: float,
        *,
        error: bool = False,
        nonfinite: bool = False,
        thread: int | None = None,
    ) -> None:
        """One run on ``thread`` (default: this one): its time, whether it failed, whether its
        answer held NaN or Inf."""
        thread = threading.get_ident() if thread is None else thread
        now = self._clock()
        with self._lock:
            self._requests += 1
            if error:
                self._errors += 1
            elif thread in self._threads:
                self._times.append((now, seconds))
            self._threads.add(thread)
            if nonfinite:
                self._nonfinite += 1

    def oldest(self) -> float:
        """When the oldest run time kept ended (-inf: none kept)."""
        with self._lock:
            return self._times[0][0] if self._times else float("-inf")

    def stats(self, since: float = float("-inf")) -> WatchStats:
        """The counts so far, with the p99 of the run times that ended at ``since`` or later."""
        with self._lock:
            times = [seconds for ended, seconds in self._times if ended >= since]
            requests, errors, nonfinite = self._requests, self._errors, self._nonfinite
        return WatchStats(requests, errors, nonfinite, percentile(times), len(times))


LATENCY_SETTLE_SECONDS = 2.0
"""Run times of a canary's first seconds are not compared: a version just loaded runs slower
at first (measured with both at 50%: 7.0% of the new version's runs over 1 ms in its first
1.5 s against 5.2% of the old one's, then the same share). On a contended CPU a good canary
was rolled back at 3.117 ms against 0.743 ms; leaving out its first 2 s, 8 of 8 runs beside
two busy loops were promoted."""


def compared(
    canary: Watch, previous: Watch, settle: float = LATENCY_SETTLE_SECONDS
) -> tuple[WatchStats, WatchStats]:
    """Both watches' stats, their run times over the same span: from ``settle`` seconds after
    the canary's watch started, or the later of their oldest kept times."""
    since = max(canary.oldest(), previous.oldest(), canary.started + settle)
    return canary.stats(since), previous.stats(since)


@dataclass(frozen=True)
class Decision:
    """``watch`` (go on), ``promote`` or ``rollback``, with the reason."""

    action: str
    reason: str = ""


WATCHING = Decision("watch")


def _rate(count: int, total: int) -> float:
    return count / total if total else 0.0


def judge(
    canary: WatchStats, previous: WatchStats, settings: RolloutSettings, elapsed: float
) -> Decision:
    """The canary's fate after ``elapsed`` seconds.

    - non-finite answers: more than ``canary_max_nonfinite`` beyond what the previous version's
      rate would give on as many requests -> rollback (at once: no minimum count);
    - errors: more than the previous version's rate + ``canary_max_error_rate`` of at least
      ``canary_min_requests`` runs (so two failures in the first runs already breach) ->
      rollback;
    - p99, once both have ``canary_min_requests`` timed runs: above ``canary_latency_ratio`` x
      the previous version's and by at least ``LATENCY_FLOOR_SECONDS`` -> rollback;
    - ``canary_seconds`` passed and ``canary_min_requests`` runs seen -> promote.
    """
    n = canary.requests
    allowed = settings.canary_max_nonfinite + _rate(previous.nonfinite, previous.requests) * n
    if canary.nonfinite > allowed:
        return Decision(
            "rollback",
            f"{canary.nonfinite} of {n} canary answers held NaN or Inf (the previous version: "
            f"{previous.nonfinite} of {previous.requests})",
        )
    base = _rate(previous.errors, previous.requests)
    if canary.errors - base * n > settings.canary_max_error_rate * max(
        n, settings.canary_min_requests
    ):
        return Decision(
            "rollback",
            f"{canary.errors} of {n} canary runs failed, {_rate(canary.errors, n):.1%} against "
            f"the previous version's {base:.1%} (limit +{settings.canary_max_error_rate:.1%})",
        )
    ratio = settings.canary_latency_ratio
    enough = min(canary.timed, previous.timed) >= settings.canary_min_requests
    if (
        ratio
        and enough
        and canary.p99 > ratio * previous.p99
        and canary.p99 - previous.p99 >= LATENCY_FLOOR_SECONDS
    ):
        return Decision(
            "rollback",
            f"canary p99 {canary.p99 * 1e3:.3f} ms against the previous version's "
            f"{previous.p99 * 1e3:.3f} ms (limit x{ratio:g})",
        )
    if elapsed >= settings.canary_seconds and n >= settings.canary_min_requests:
        return Decision(
            "promote",
            f"{n} canary runs in {elapsed:.0f}s: {canary.errors} failed, {canary.nonfinite} "
            f"non-finite, p99 {canary.p99 * 1e3:.3f} ms (previous {previous.p99 * 1e3:.3f} ms)",
        )
    return WATCHING
