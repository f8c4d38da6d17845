"""Per-version statistics, the workers' metrics merge, the access log and metric forgetting.
No TensorFlow, no server."""

from __future__ import annotations

import logging

import pytest
from hypothesis import given
from hypothesis import strategies as st

from swapserve.cluster.metrics_merge import Scrapes, merge
from swapserve.observability.access_log import AccessLog
from swapserve.observability.calls import CallRecord, current, note_run, recording
from swapserve.observability.metrics import Metrics
from swapserve.observability.stats import Statistics

WORKER = """# HELP swapserve_requests_total Calls.
# TYPE swapserve_requests_total counter
swapserve_requests_total{{model="m",version="1",code="OK"}} {n}
swapserve_requests_created{{model="m",version="1",code="OK"}} {created}
# HELP swapserve_served_version Served.
# TYPE swapserve_served_version gauge
swapserve_served_version{{model="m"}} {served}
# HELP swapserve_config_ok Ok.
# TYPE swapserve_config_ok gauge
swapserve_config_ok {ok}
# HELP swapserve_inflight_requests In flight.
# TYPE swapserve_inflight_requests gauge
swapserve_inflight_requests{{model="m"}} {inflight}
"""


def _record(code: str = "OK", seconds: float = 0.01, version: int = 3) -> CallRecord:
    record = CallRecord("swapserve", "Predict", model="m", version=version, rows=2)
    record.code, record.seconds, record.run_seconds = code, seconds, seconds / 2
    return record


def test_statistics_count_per_version_and_are_forgotten() -> None:
    stats = Statistics(executions=lambda model, version: 7 if (model, version) == ("m", 3) else 0)
    for i in range(100):
        stats.called(_record(seconds=(i + 1) / 1000))
    stats.called(_record(code="INVALID_ARGUMENT"))
    stats.called(_record(version=0))  # no version took it: not counted anywhere
    s = stats.get("m", 3)
    assert (s.success.count, s.fail.count, s.inference_count, s.execution_count) == (100, 1, 200, 7)
    assert s.p99_seconds == pytest.approx(0.1)
    assert s.last_error_ms >= s.last_inference_ms > 0
    stats.forget("m", 3)
    assert stats.get("m", 3).success.count == 0


def _versions_in_series(metrics: Metrics) -> set[str | None]:
    return {
        s.labels.get("version")
        for family in metrics.registry.collect()
        for s in family.samples
        if s.name.startswith("swapserve_")
    }


def test_a_call_finishing_after_its_version_was_released_makes_no_series() -> None:
    """Before: a request answered by version 1 and counted after the swap had released it
    re-created version 1's series (~9% of swaps under load; unbounded over time)."""
    metrics = Metrics()
    metrics.loaded("m", 1, 0.1, 0)
    metrics.observe(_record(version=1), known=True)
    assert "1" in _versions_in_series(metrics)
    metrics.unloaded("m", 1)
    metrics.observe(_record(version=1), known=True)  # finished after the release
    assert "1" not in _versions_in_series(metrics)
    assert metrics.stats.get("m", 1).execution_count == 0
    late = [
        s.value
        for family in metrics.registry.collect()
        for s in family.samples
        if s.name == "swapserve_requests_total" and s.labels["version"] == ""
    ]
    assert late == [1]  # still counted, without a version


def test_metrics_forget_every_series_of_a_version() -> None:
    metrics = Metrics()
    for version in (1, 2):
        metrics.loaded("m", version, 0.1, 0)
        metrics.observe(_record(version=version), known=True)
        metrics.ran("m", version, 0.001)
    metrics.observe(_record(version=1), known=False)  # an unknown model: labelled ""
    metrics.ran("m", 2, 0.001)
    assert [metrics.stats.get("m", v).execution_count for v in (1, 2)] == [1, 2]
    metrics.forget_version("m", 1)
    assert metrics.stats.get("m", 1).execution_count == 0
    names = {
        (s.name, tuple(sorted(s.labels.items())))
        for family in metrics.registry.collect()
        for s in family.samples
        if s.name.startswith("swapserve_")
    }
    versions = {dict(labels).get("version") for _, labels in names}
    assert "1" not in versions and "2" in versions and "" in versions
    metrics.forget_model("m")
    assert metrics.stats.get("m", 2).success.count == 0


def test_workers_merge_by_meaning() -> None:
    texts = [
        WORKER.format(n=3, created=20, served=2, ok=1, inflight=1),
        WORKER.format(n=4, created=10, served=1, ok=0, inflight=2),
    ]
    merged = {
        (s.name, tuple(sorted(s.labels.items()))): s.value for f in merge(texts) for s in f.samples
    }
    labels = (("code", "OK"), ("model", "m"), ("version", "1"))
    assert merged[("swapserve_requests_total", labels)] == 7
    assert merged[("swapserve_requests_created", labels)] == 10
    assert merged[("swapserve_served_version", (("model", "m"),))] == 2
    assert merged[("swapserve_config_ok", ())] == 0
    assert merged[("swapserve_inflight_requests", (("model", "m"),))] == 3


@given(st.lists(st.integers(0, 10**6), min_size=1, max_size=8))
def test_counters_merge_to_their_sum(counts: list[int]) -> None:
    texts = [WORKER.format(n=n, created=1, served=1, ok=1, inflight=0) for n in counts]
    (total,) = [
        s.value for f in merge(texts) for s in f.samples if s.name == "swapserve_requests_total"
    ]
    assert total == sum(counts)


def test_access_log_lines(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="swapserve.access")
    record = _record()
    record.model, record.peer = "bad\nname with spaces", "ipv4:127.0.0.1:5"
    AccessLog()(record)
    AccessLog(0.5, draw=lambda: 0.7)(record)  # not drawn
    (line,) = [r.getMessage() for r in caplog.records]
    assert "\n" not in line and "model='bad\\nname with spaces'" in line
    assert "version=3 signature=- rows=2 code=OK ms=10.000 peer=ipv4:127.0.0.1:5" in line
    with pytest.raises(ValueError, match="sample"):
        AccessLog(0)


def test_a_run_is_noted_only_on_the_current_call() -> None:
    note_run("s", {}, {}, run_seconds=1.0)  # outside a call: nothing to note, no error
    record = CallRecord("swapserve", "Predict")
    with recording(record):
        assert current() is record
        note_run("serving_default", {}, {}, run_seconds=0.5, rows=4)
    assert current() is None
    assert (record.signature, record.rows, record.run_seconds) == ("serving_default", 4, 0.5)


def test_inflight_gauge_is_read_when_scraped() -> None:
    class Source:
        inflight = 0

    def gauge() -> list[float]:
        return [
            s.value
            for family in metrics.registry.collect()
            for s in family.samples
            if s.name == "swapserve_inflight_requests" and s.labels == {"model": "m"}
        ]

    metrics, source = Metrics(), Source()
    metrics.track_inflight("m", source)
    source.inflight = 3
    assert gauge() == [3]
    del source  # held weakly: a dropped map reads as 0, not kept alive
    assert gauge() == [0]
    metrics.forget_model("m")
    assert gauge() == []


def _total(scrapes: Scrapes, texts: dict[tuple[int, int], str]) -> tuple[float, float]:
    families = scrapes.merged(texts)
    values = {s.name: s.value for f in families for s in f.samples}
    return values.get("swapserve_requests_total", 0.0), values["swapserve_inflight_requests"]


@given(st.lists(st.tuples(st.integers(0, 1), st.integers(1, 50), st.booleans()), max_size=30))
def test_merged_counters_never_fall_when_workers_die(steps: list[tuple[int, int, bool]]) -> None:
    """Before: one of two workers SIGKILLed took swapserve_requests_total from 2,050 to 1,026
    (Prometheus reads a reset). Each step: worker ``w`` serves ``n`` more requests, then maybe
    dies and restarts from zero on a new port. The merged counter never falls; gauges of dead
    workers are not kept."""
    scrapes = Scrapes()
    counts, ports = [0, 0], [100, 200]
    last = 0.0
    for w, n, dies in steps:
        counts[w] += n
        texts = {
            (i, ports[i]): WORKER.format(n=counts[i], created=1, served=1, ok=1, inflight=1)
            for i in (0, 1)
        }
        total, inflight = _total(scrapes, texts)
        assert total >= last and inflight == 2
        last = total
        if dies:
            scrapes.retire(w)
            counts[w], ports[w] = 0, ports[w] + 1


def test_a_dead_workers_series_of_a_released_version_go() -> None:
    scrapes = Scrapes()
    one = WORKER.format(n=5, created=1, served=1, ok=1, inflight=0)
    scrapes.merged({(0, 1): one, (1, 2): one})
    scrapes.retire(0)
    # Worker 1 now serves version 2 only: version 1's retired counts are not shown alone.
    two = one.replace('version="1"', 'version="2"')
    names = {
        dict(s.labels).get("version")
        for f in scrapes.merged({(1, 2): two, (0, 3): two})
        for s in f.samples
    }
    assert "1" not in names and "2" in names
