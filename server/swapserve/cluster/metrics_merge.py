"""One Prometheus scrape for ``--workers N``: the supervisor scrapes every worker's private
metrics endpoint and answers ``--metrics-port`` with the merge.

Counters and histograms add up across workers (requests, runs, latency buckets). Gauges merge by
meaning: most add up too (requests in flight, memory, open files), the served version is the
highest any worker serves, ``swapserve_config_ok`` is the lowest (one worker refusing an edit
shows), start times are the earliest. Series keep their labels, so a version's series still
disappear when every worker has released it. Pure (no TensorFlow); the scraping is in
``supervisor.py``.

A worker that dies takes its counts with it; summed naively, ``swapserve_requests_total`` would
fall (2,050 to 1,026 with one of two workers killed) and Prometheus would read a reset and
invent ~1,000 requests in ``rate()``. So ``Scrapes`` keeps each worker's last scrape and, when
the worker dies, retires its counters (as prometheus-client's multiprocess mode keeps a dead
process's files): they are added to every later merge. A retired series naming a version no
live worker reports any more is left out, so released versions' series still go.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

_GAUGE_MERGE = {
    "swapserve_served_version": max,
    "swapserve_rollout_phase": max,
    "swapserve_rollout_version": max,
    "swapserve_canary_percent": max,
    "swapserve_config_ok": min,
    "process_start_time_seconds": min,
    "process_max_fds": max,
    "python_info": max,
}
"""Gauges that do not add up across workers (others: the sum)."""


Key = tuple[str, str, tuple[tuple[str, str], ...]]
"""(family, sample, sorted labels)."""

_COUNTING = ("counter", "histogram", "summary")


@dataclass
class Retired:
    """The counters of workers that died: per series, the sum of their last values."""

    families: dict[str, tuple[str, str]] = field(default_factory=dict)
    """family name -> (documentation, type)"""
    values: dict[Key, float] = field(default_factory=dict)

    def add(self, text: str) -> None:
        """Adds a dead worker's last scrape (its counters and histograms only)."""
        for family in text_string_to_metric_families(text):
            if family.type not in _COUNTING:
                continue
            self.families.setdefault(family.name, (family.documentation, family.type))
            for sample in family.samples:
                if sample.name.endswith("_created"):
                    continue
                key = (family.name, sample.name, tuple(sorted(sample.labels.items())))
                self.values[key] = self.values.get(key, 0.0) + sample.value


def merge(texts: Iterable[str], retired: Retired | None = None) -> list[Metric]:
    """The metric families of several scrapes (Prometheus text format), merged, with the
    counters of dead workers added (a series naming a version no live worker reports is left
    out)."""
    families: dict[str, Metric] = {}
    values: dict[Key, list[float]] = {}
    order: list[Key] = []
    for text in texts:
        for family in text_string_to_metric_families(text):
            known = families.setdefault(
                family.name, Metric(family.name, family.documentation, family.type)
            )
            for sample in family.samples:
                key = (known.name, sample.name, tuple(sorted(sample.labels.items())))
                if key not in values:
                    values[key] = []
                    order.append(key)
                values[key].append(sample.value)
    if retired is not None:
        live_versions = {dict(k[2]).get("version") for k in values}
        for key, value in retired.values.items():
            version = dict(key[2]).get("version")
            if version and version not in live_versions:
                continue  # a released version: its series went with it
            if key not in values:
                doc, kind = retired.families[key[0]]
                families.setdefault(key[0], Metric(key[0], doc, kind))
                values[key] = []
                order.append(key)
            values[key].append(value)
    for key in order:
        family_name, sample_name, labels = key
        family = families[family_name]
        family.add_sample(sample_name, dict(labels), _combine(family, sample_name, values[key]))
    return list(families.values())


def _combine(family: Metric, sample: str, values: list[float]) -> float:
    if sample.endswith("_created"):
        return min(values)  # when the series first existed anywhere
    if family.type in ("gauge", "info", "unknown"):
        return float(_GAUGE_MERGE.get(family.name, sum)(values))
    return float(sum(values))


Incarnation = tuple[int, int]
"""A worker process: (worker number, its private metrics port)."""


class Scrapes:
    """Each worker's last scrape, and the retired counters of the workers that died."""

    def __init__(self) -> None:
        self._lock = threading.Lock()  # guards the three fields below (scrapes run on threads)
        self._last: dict[Incarnation, str] = {}
        self._gone: set[Incarnation] = set()  # retired: a late scrape of one is not kept
        self._retired = Retired()

    def merged(self, texts: Mapping[Incarnation, str]) -> list[Metric]:
        """Merges the live workers' ``texts`` with the retired counters and keeps each as that
        worker's last scrape."""
        with self._lock:
            self._last.update({k: t for k, t in texts.items() if t and k not in self._gone})
            return merge(texts.values(), self._retired)

    def retire(self, worker: int) -> None:
        """The worker died: its last scrape's counters count on."""
        with self._lock:
            for key in [k for k in self._last if k[0] == worker]:
                self._retired.add(self._last.pop(key))
                self._gone.add(key)


class MergedCollector:
    """A prometheus-client collector answering with the merge of ``scrape()``'s texts (by
    worker) and the dead workers' counters in ``scrapes``."""

    def __init__(self, scrape: Callable[[], Mapping[Incarnation, str]], scrapes: Scrapes) -> None:
        self._scrape = scrape
        self._scrapes = scrapes

    def collect(self) -> list[Metric]:
        return self._scrapes.merged(self._scrape())
