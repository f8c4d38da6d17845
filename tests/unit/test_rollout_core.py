"""Safe rollout through the model core (issue 31): gates refuse, force overrides, a canary is
promoted or rolled back -- with the fake loader, real threads, no TensorFlow."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from fakes import FakeLoader, write_version

from swapserve.config.model_settings import ModelSettings, SessionSettings
from swapserve.config.rollout_settings import RolloutSettings
from swapserve.errors import FailedPrecondition
from swapserve.model.manager import ModelManager
from swapserve.model.records import State


def _manager(root: Path, **rollout: object) -> ModelManager:
    settings = ModelSettings(
        name="m",
        export_root=root,
        reload_settle_seconds=0.0,
        settle_seconds=0.0,
        rollout=RolloutSettings(**rollout),  # type: ignore[arg-type]
    )
    return ModelManager(settings, SessionSettings(), loader=FakeLoader())


def _predict(manager: ModelManager, x: float) -> tuple[int, float]:
    handle = manager.acquire(0, "", True)
    assert handle is not None
    try:
        answer = handle.run("", {"x": np.array([x], np.float32)})
    finally:
        manager.release(handle)
    return answer.version, float(answer.outputs["y"][0])


def _state(manager: ModelManager, version: int) -> tuple[State, str]:
    (status,) = [v for v in manager.status().versions if v.version == version]
    return status.state, status.error


@pytest.mark.parametrize(
    ("behaviour", "gate", "words"),
    [
        ("nan", "finite", "output 'y': 1 of 1 values are NaN or Inf"),
        ("renamed", "signature", "input 'x' is gone (the new version takes 'z')"),
    ],
)
def test_a_broken_export_is_refused_and_the_serving_version_keeps_serving(
    tmp_path: Path, behaviour: str, gate: str, words: str
) -> None:
    write_version(tmp_path, 1)
    manager = _manager(tmp_path)
    manager.poll(initial=True)
    write_version(tmp_path, 2, behaviour=behaviour)
    manager.poll(initial=True)
    assert manager.serving_version == 1
    state, error = _state(manager, 2)
    assert state is State.FAILED
    assert error.startswith(f"rejected by the {gate} gate: ")
    assert words in error
    assert manager.status().rollout.phase == "refused"
    assert manager.status().rollout.gate == gate
    assert _predict(manager, 2.0) == (1, 2.0)
    # Not retried while its files stay the same; a plain Reload names the gate.
    with pytest.raises(FailedPrecondition, match=f"rejected by the {gate} gate"):
        manager.reload()
    assert manager.serving_version == 1
    # Force serves it anyway.
    outcome = manager.reload(force=True)
    assert outcome.version == 2
    assert manager.status().rollout.phase == "forced"
    # Fixed files are evaluated again.
    write_version(tmp_path, 2)
    manager.reload()
    assert manager.serving_version == 2
    manager.close()


def test_the_sample_of_live_requests_refuses_what_zeros_would_pass(tmp_path: Path) -> None:
    write_version(tmp_path, 1)
    manager = _manager(tmp_path)
    manager.poll(initial=True)
    for x in (0.5, 2.0, 3.0):
        _predict(manager, x)
    write_version(tmp_path, 2, behaviour="nan-above-1")
    manager.poll(initial=True)
    assert manager.serving_version == 1
    assert "rejected by the finite gate" in _state(manager, 2)[1]
    manager.close()


def test_the_first_version_needs_only_the_finite_gate(tmp_path: Path) -> None:
    write_version(tmp_path, 1, behaviour="nan")
    manager = _manager(tmp_path)
    manager.poll(initial=True)
    assert manager.serving_version == 0
    assert _state(manager, 1)[1].startswith("rejected by the finite gate")
    manager.close()
    write_version(tmp_path / "b", 1, behaviour="renamed")
    manager = _manager(tmp_path / "b")
    manager.poll(initial=True)
    assert manager.serving_version == 1
    manager.close()


def test_gates_off_serve_whatever_loads(tmp_path: Path) -> None:
    write_version(tmp_path, 1)
    manager = _manager(tmp_path, gates=False)
    manager.poll(initial=True)
    write_version(tmp_path, 2, behaviour="nan")
    manager.poll(initial=True)
    assert manager.serving_version == 2
    manager.close()


def _wait(condition: object, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return
        time.sleep(0.01)
    raise AssertionError("timed out")


def test_a_canary_answers_its_share_then_is_promoted(tmp_path: Path) -> None:
    write_version(tmp_path, 1)
    manager = _manager(tmp_path, canary_percent=30, canary_seconds=2, canary_min_requests=50)
    manager.poll(initial=True)
    write_version(tmp_path, 2)
    outcome = manager.reload()
    assert (outcome.version, outcome.canary_version, outcome.canary_percent) == (1, 2, 30)
    assert manager.status().rollout.phase == "canary"
    seen: Counter[int] = Counter()
    for _ in range(2000):
        version = _predict(manager, 1.0)[0]
        if manager._map.canary is None:  # promoted meanwhile (a slow machine): stop counting
            break
        seen[version] += 1
    assert seen.total() >= 500 and 0.25 < seen[2] / seen.total() < 0.35, seen
    # A request naming a version is never diverted.
    handle = manager.acquire(1, "", True)
    assert handle is not None and handle.version == 1
    manager.release(handle)
    _wait(lambda: manager.serving_version == 2)
    assert manager.status().rollout.phase == "promoted"
    # The promotion serves 2 first, then retires 1 (a moment later on a slow machine).
    _wait(lambda: manager.loaded_versions == (2,))
    assert manager.wait_unloaded(5)
    manager.close()


def test_a_canary_that_answers_nan_on_live_inputs_is_rolled_back_without_a_nan_answer(
    tmp_path: Path,
) -> None:
    write_version(tmp_path, 1)
    manager = _manager(tmp_path, canary_percent=50, canary_seconds=60)
    manager.poll(initial=True)
    _predict(manager, 0.5)  # the sample holds only inputs the new version answers
    write_version(tmp_path, 2, behaviour="nan-above-1")
    manager.reload()
    answers = [_predict(manager, 2.0) for _ in range(200)]
    assert all(np.isfinite(y) for _, y in answers)
    _wait(lambda: manager.status().rollout.phase == "rolled back")
    state, error = _state(manager, 2)
    assert state is State.FAILED
    assert error.startswith("rolled back: ")
    assert "NaN or Inf" in error
    assert manager.serving_version == 1
    assert manager.wait_unloaded(5)
    assert manager.loaded_versions == (1,)
    # Not tried again while its files stay the same.
    manager.poll()
    assert manager.loaded_versions == (1,)
    manager.close()


def test_a_request_diverted_before_a_rollback_is_still_answered_by_the_previous_version(
    tmp_path: Path,
) -> None:
    # The CI failure this pins down: a request acquired the canary, the monitor rolled the
    # canary back before the request ran, and the request ran the canary unwatched -- one NaN
    # answer reached a client.
    write_version(tmp_path, 1)
    manager = _manager(tmp_path, canary_percent=100, canary_seconds=60)
    manager.poll(initial=True)
    _predict(manager, 0.5)
    write_version(tmp_path, 2, behaviour="nan-above-1")
    manager.reload()
    held = manager.acquire(0, "", True)
    assert held is not None and held.version == 2
    assert manager._map.end_canary() == 2  # what a rollback does, between acquire and run
    try:
        answer = held.run("", {"x": np.array([2.0], np.float32)})
    finally:
        manager.release(held)
    assert answer.version == 1 and np.isfinite(answer.outputs["y"]).all()
    # A request naming the version gets that version's own answer, NaN included.
    named = manager.acquire(2)
    assert named is not None
    try:
        assert np.isnan(named.run("", {"x": np.array([2.0], np.float32)}).outputs["y"]).all()
    finally:
        manager.release(named)
    manager.close()


def test_a_pin_ends_a_canary_at_once(tmp_path: Path) -> None:
    write_version(tmp_path, 1)
    manager = _manager(tmp_path, canary_percent=50, canary_seconds=60)
    manager.poll(initial=True)
    write_version(tmp_path, 2)
    manager.reload()
    assert manager.status().rollout.phase == "canary"
    manager.reload(2)
    assert manager.serving_version == 2
    assert manager._map.canary is None
    assert {_predict(manager, 1.0)[0] for _ in range(50)} == {2}
    manager.close()


def test_a_forced_reload_ends_a_canary_and_serves_the_newest(tmp_path: Path) -> None:
    write_version(tmp_path, 1)
    manager = _manager(tmp_path, canary_percent=50, canary_seconds=60)
    manager.poll(initial=True)
    write_version(tmp_path, 2)
    assert manager.reload().canary_version == 2
    outcome = manager.reload(force=True)
    assert (outcome.version, outcome.canary_version) == (2, 0)
    assert manager.status().rollout.phase == "forced"
    assert {_predict(manager, 1.0)[0] for _ in range(50)} == {2}
    manager.close()


def test_workers_share_gate_outcomes_and_the_first_canary_verdict() -> None:
    import multiprocessing

    from swapserve.cluster.coordinator import ClusterState
    from swapserve.cluster.rollouts import TEXT_BYTES, ClusterVerdicts
    from swapserve.model.canary import Decision

    state = ClusterState(multiprocessing.get_context("spawn"), workers=2, models=2)
    first, second = ClusterVerdicts(state, ["b", "a"]), ClusterVerdicts(state, ["a", "b"])
    assert second.known("a", 2, files=7) is None
    first.publish("a", 2, 7, "rejected by the finite gate: " + "x" * 2000)
    known = second.known("a", 2, files=7)
    assert known is not None and known.startswith("rejected by the finite gate: x")
    assert len(known.encode()) == TEXT_BYTES - 1  # cut, never overflowing into model b
    assert second.known("b", 2, files=7) is None
    assert second.known("a", 2, files=8) is None  # other files: gated again
    first.publish("a", 3, 9, "")
    assert second.known("a", 3, files=9) == ""  # passed
    rollback = Decision("rollback", "3 of 9 canary answers held NaN or Inf")
    assert first.decide("a", 3, 9, rollback) == rollback
    late = second.decide("a", 3, 9, Decision("promote", "window passed"))
    assert late.action == "rollback" and late.reason.startswith("3 of 9 canary answers")
    decided = second.decided("a", 3, 9)
    assert decided is not None and decided.action == "rollback"
    assert second.decided("a", 3, 10) is None  # a new canary of new files starts clean
    with first.exclusive(lambda: None):
        assert not state.swap_lock.acquire(block=False)
    assert state.swap_lock.acquire(block=False)
    state.swap_lock.release()
