"""One Prometheus scrape for ``--workers N``: the supervisor scrapes every worker's private
metrics endpoint and answers ``--metrics-port`` with the merge.

Counters and histograms add up across workers (requests, runs, latency buckets). Gauges merge by
meaning: most add up too (requests in flight, memory, open files), the served version is the
highest any worker serves, ``swapserve_config_ok`` is the lowest (one worker refusing an edit
shows), start times are the earliest. Series keep their labels, so a version's series still
disappear when every worker has released it. Pure (no TensorFlow); the scraping is in
``supervisor.py``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

_GAUGE_MERGE = {
    "swapserve_served_version": max,
    "swapserve_config_ok": min,
    "process_start_time_seconds": min,
    "process_max_fds": max,
    "python_info": max,
}
"""Gauges that do not add up across workers (others: the sum)."""


def merge(texts: Iterable[str]) -> list[Metric]:
    """The metric families of several scrapes (Prometheus text format), merged."""
    families: dict[str, Metric] = {}
    values: dict[tuple[str, str, tuple[tuple[str, str], ...]], list[float]] = {}
    order: list[tuple[str, str, tuple[tuple[str, str], ...]]] = []
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


class MergedCollector:
    """A prometheus-client collector answering with the merge of ``scrape()``'s texts."""

    def __init__(self, scrape: Any) -> None:
        self._scrape = scrape

    def collect(self) -> list[Metric]:
        return merge(self._scrape())
