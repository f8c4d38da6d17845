"""The request path's counter + histogram collector writes what prometheus-client's own
``Counter`` and ``Histogram`` would, for any series of events."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from swapserve.observability.timed_series import TimedCounter

BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.1, 1.0)

events = st.lists(
    st.tuples(
        st.sampled_from(["m", "n", ""]),
        st.sampled_from(["1", "2"]),
        st.sampled_from(["OK", "INVALID_ARGUMENT", "404"]),
        # Bounds themselves, values between them and past the last bound.
        st.one_of(st.sampled_from(BUCKETS), st.floats(0, 5, allow_nan=False)),
    ),
    max_size=60,
)


def _scrape(registry: CollectorRegistry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a scrape, ``_created`` ones reduced to "present" (their times differ)."""
    text = generate_latest(registry).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): 1.0 if s.name.endswith("_created") else s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _pair(registry: CollectorRegistry) -> TimedCounter:
    return TimedCounter(
        ("t_requests_total", "Calls."),
        ("t_request_seconds", "Latency."),
        ["model", "version"],
        ["code"],
        BUCKETS,
        registry=registry,
    )


@given(events)
def test_exposition_matches_prometheus_clients_own_metrics(
    calls: list[tuple[str, str, str, float]],
) -> None:
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    timed = _pair(ours)
    counter = Counter("t_requests_total", "Calls.", ["model", "version", "code"], registry=theirs)
    histogram = Histogram(
        "t_request_seconds", "Latency.", ["model", "version"], buckets=BUCKETS, registry=theirs
    )
    for model, version, code, seconds in calls:
        timed.record((model, version, code), seconds)
        counter.labels(model, version, code).inc()
        histogram.labels(model, version).observe(seconds)
    got, want = _scrape(ours), _scrape(theirs)
    assert got.keys() == want.keys()
    for key, value in want.items():
        assert got[key] == pytest.approx(value), key


def test_remove_drops_the_matching_counter_and_histogram_series() -> None:
    registry = CollectorRegistry()
    timed = _pair(registry)
    timed.record(("m", "1", "OK"), 0.001)
    timed.record(("m", "2", "OK"), 0.001)
    timed.remove(lambda values: values[:2] == ("m", "1"))
    versions = {dict(labels).get("version") for (name, labels) in _scrape(registry) if "t_" in name}
    assert versions == {"2"}
    timed.record(("m", "1", "OK"), 0.5)  # a series that comes back starts from zero
    assert (
        _scrape(registry)[("t_requests_total", (("code", "OK"), ("model", "m"), ("version", "1")))]
        == 1
    )


def test_wrong_label_count_and_name_collisions_are_refused() -> None:
    registry = CollectorRegistry()
    timed = _pair(registry)
    with pytest.raises(ValueError, match="takes 3 label values"):
        timed.record(("m", "1"), 0.1)
    with pytest.raises(ValueError, match="Duplicated timeseries"):
        Counter("t_requests_total", "again", registry=registry)
    with pytest.raises(ValueError, match="_total"):
        TimedCounter(("t_runs", ""), ("t_run_seconds", ""), [], [], BUCKETS, registry=registry)
