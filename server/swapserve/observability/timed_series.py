"""A counter and a latency histogram updated together on every call, as one prometheus-client
collector.

Every request updates ``swapserve_requests_total`` with ``swapserve_request_seconds``, and every
model run ``swapserve_model_runs_total`` with ``swapserve_model_run_seconds``. With
prometheus-client's ``Counter`` and ``Histogram`` that is two ``inc`` and two ``observe``
calls per request, each taking its own lock and checking its arguments: about 25 Python calls,
a fifth of swapserve's own per-request work (measured in docs/performance.md). Here one update
is one lock, one ``bisect`` and three additions; the exposition (names, labels, buckets,
``_created``) is what prometheus-client's own metrics would write, built when scraped.
"""

from __future__ import annotations

import threading
import time
from bisect import bisect_left
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from itertools import accumulate

from prometheus_client.metrics_core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import CollectorRegistry
from prometheus_client.samples import Sample
from prometheus_client.utils import floatToGoString

_go_text: Callable[[float], str] = floatToGoString
"""How prometheus-client writes a bucket bound (``le``)."""


@dataclass(slots=True)
class _Histogram:
    buckets: list[int]
    """Observations per bucket (not cumulative); the last is +Inf."""
    sum: float
    created: float


@dataclass(slots=True)
class _Cell:
    """One counter series and the histogram series it shares with the others of its labels."""

    count: int
    created: float
    histogram: _Histogram


class TimedCounter:
    """A counter labelled ``labels + extra`` and a histogram labelled ``labels`` (the counter
    may split by more, e.g. the status code), updated together by ``record``.

    Args:
        counter: the counter's name, ending in ``_total``.
        histogram: the histogram's name.
        labels: the labels both carry, in order.
        extra: labels only the counter carries, after ``labels``.
        buckets: the histogram's upper bounds, ascending (+Inf is added).
    """

    def __init__(
        self,
        counter: tuple[str, str],
        histogram: tuple[str, str],
        labels: Sequence[str],
        extra: Sequence[str],
        buckets: Sequence[float],
        *,
        registry: CollectorRegistry,
    ) -> None:
        if not counter[0].endswith("_total"):
            raise ValueError(f"a counter's name ends in _total: {counter[0]!r}")
        if list(buckets) != sorted(set(buckets)):
            raise ValueError("buckets must ascend without repeats")
        self._counter = counter
        self._histogram = histogram
        self._labels = tuple(labels)
        self._counter_labels = (*labels, *extra)
        self._bounds = tuple(float(b) for b in buckets)
        self._les = (*(_go_text(b) for b in self._bounds), "+Inf")
        self._lock = threading.Lock()  # guards _cells, _histograms and every count in them
        self._cells: dict[tuple[str, ...], _Cell] = {}  # by the counter's label values
        self._histograms: dict[tuple[str, ...], _Histogram] = {}  # by the histogram's
        registry.register(self)

    def record(self, values: tuple[str, ...], seconds: float) -> None:
        """Counts one event labelled ``values`` (the counter's label values) that took
        ``seconds``."""
        with self._lock:
            cell = self._cells.get(values)
            if cell is None:
                cell = self._new(values)
            cell.count += 1
            histogram = cell.histogram
            histogram.buckets[bisect_left(self._bounds, seconds)] += 1
            histogram.sum += seconds

    def count(self, values: tuple[str, ...]) -> int:
        """The counter's value for ``values`` (0 for a series never recorded or removed)."""
        with self._lock:
            cell = self._cells.get(values)
            return cell.count if cell is not None else 0

    def _new(self, values: tuple[str, ...]) -> _Cell:
        """The series of new label values (called under ``_lock``)."""
        if len(values) != len(self._counter_labels):
            raise ValueError(f"{self._counter[0]} takes {len(self._counter_labels)} label values")
        now = time.time()
        key = values[: len(self._labels)]
        histogram = self._histograms.get(key)
        if histogram is None:
            histogram = self._histograms[key] = _Histogram([0] * len(self._les), 0.0, now)
        cell = self._cells[values] = _Cell(0, now, histogram)
        return cell

    def remove(self, matches: Callable[[tuple[str, ...]], bool]) -> None:
        """Drops the series whose label values match (the histogram's are matched on its own,
        shorter, values)."""
        with self._lock:
            for key in [k for k in self._cells if matches(k)]:
                del self._cells[key]
            for key in [k for k in self._histograms if matches(k)]:
                del self._histograms[key]

    def describe(self) -> list[Metric]:
        """The families' names, so the registry refuses a collision without collecting."""
        return [
            CounterMetricFamily(*self._counter, labels=self._counter_labels),
            HistogramMetricFamily(*self._histogram, labels=self._labels),
        ]

    def collect(self) -> Iterator[Metric]:
        """The current values, as prometheus-client's ``Counter`` and ``Histogram`` write
        them."""
        with self._lock:
            cells = [(k, c.count, c.created) for k, c in self._cells.items()]
            histograms = [
                (k, list(h.buckets), h.sum, h.created) for k, h in self._histograms.items()
            ]
        counter = CounterMetricFamily(*self._counter, labels=self._counter_labels)
        for values, count, created in cells:
            counter.add_metric(values, count, created=created)
        yield counter
        family = HistogramMetricFamily(*self._histogram, labels=self._labels)
        for values, buckets, total, created in histograms:
            family.add_metric(values, list(zip(self._les, accumulate(buckets), strict=True)), total)
            family.samples.append(
                Sample(
                    f"{family.name}_created", dict(zip(self._labels, values, strict=True)), created
                )
            )
        yield family
