"""Per-version records: settling, failure memory, forgetting removed versions."""

from __future__ import annotations

from pathlib import Path

from test_discovery import FakeClock, _version

from swapserve.model import discovery
from swapserve.model.records import VersionRecords


def test_settle_period_restarts_when_files_change(tmp_path: Path) -> None:
    clock = FakeClock()
    tracker = VersionRecords(clock=clock)
    path = _version(tmp_path, "5")

    def ready() -> list[int]:
        found = discovery.scan(tmp_path)
        tracker.observe(found)
        return [c.version for c in tracker.ready(found.values(), settle_seconds=1.0)]

    assert ready() == []
    clock.now += 0.5
    assert ready() == []
    (path / "variables" / "variables.index").write_bytes(b"more")  # still being copied
    clock.now += 0.9
    assert ready() == []  # the change is seen now: the clock restarts
    clock.now += 0.6
    assert ready() == []  # 2.0 s since first seen, but only 0.6 s since the last change
    clock.now += 0.4
    assert ready() == [5]


def test_failed_versions_wait_for_a_change(tmp_path: Path) -> None:
    clock = FakeClock()
    tracker = VersionRecords(clock=clock)
    path = _version(tmp_path, "7")
    found = discovery.scan(tmp_path)
    tracker.observe(found)
    clock.now += 5
    [cand] = tracker.ready(found.values(), 1.0)
    tracker.failed(cand, "broken")
    assert tracker.failed_error(7) == "broken"
    assert tracker.ready(found.values(), 1.0) == []
    assert [c.version for c in tracker.ready(found.values(), 1.0, retry_failed=True)] == [7]
    (path / "variables" / "variables.data-00000-of-00001").write_bytes(b"fixed!")
    found = discovery.scan(tmp_path)
    tracker.observe(found)
    assert tracker.failed_error(7) is None
    clock.now += 5
    assert [c.version for c in tracker.ready(found.values(), 1.0)] == [7]


def test_ready_is_newest_first_and_forgets_removed(tmp_path: Path) -> None:
    clock = FakeClock()
    tracker = VersionRecords(clock=clock)
    for name in ("3", "10", "2"):
        _version(tmp_path, name)
    found = discovery.scan(tmp_path)
    tracker.observe(found)
    clock.now += 2
    assert [c.version for c in tracker.ready(found.values(), 1.0)] == [10, 3, 2]
    tracker.observe({})
    assert tracker.age(10) == 0.0
