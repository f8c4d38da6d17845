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


def test_a_version_with_problems_fails_at_once_and_is_retried_when_repaired(
    tmp_path: Path,
) -> None:
    records = VersionRecords(FakeClock())
    path = _version(tmp_path, "2")
    (path / "a").symlink_to("b")
    (path / "b").symlink_to("a")
    observed = records.observe(discovery.scan(tmp_path))
    (status,) = records.statuses(0, {})
    assert status.state.name == "FAILED" and "a: symlink to b does not resolve" in status.error
    assert records.ready(discovery.scan(tmp_path).values(), 0.0) == []
    assert observed.retried == ()
    # Still broken after a change (one link fixed): still FAILED, not announced as a retry.
    (path / "a").unlink()
    assert records.observe(discovery.scan(tmp_path)).retried == ()
    assert records.statuses(0, {})[0].state.name == "FAILED"
    (path / "b").unlink()
    assert records.observe(discovery.scan(tmp_path)).retried == (2,)
    assert records.statuses(0, {})[0].state.name == "START"


def test_problems_appearing_in_a_loaded_version_do_not_mark_it_failed(tmp_path: Path) -> None:
    records = VersionRecords(FakeClock())
    path = _version(tmp_path, "1")
    records.observe(discovery.scan(tmp_path))
    records.available(1, 0.1)
    (path / "loop").symlink_to("loop")
    records.observe(discovery.scan(tmp_path))
    assert records.statuses(1, {})[0].state.name == "AVAILABLE"
