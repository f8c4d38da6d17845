"""The gate and canary decisions as pure functions (issue 31): signature compatibility,
non-finite counts, latency and divergence verdicts, canary routing and judgement."""

from __future__ import annotations

import zlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from swapserve.config.rollout_settings import RolloutSettings
from swapserve.model import canary, gates
from swapserve.model.canary import WatchStats
from swapserve.model.gating import GateRequest, run_gates
from swapserve.model.signature import SignatureSpec, TensorSpec

FLOAT, INT64, STRING = 1, 9, 7


def _sig(
    inputs: dict[str, tuple[int, tuple[int, ...] | None]], outputs: dict[str, int]
) -> SignatureSpec:
    return SignatureSpec(
        "serving_default",
        "tensorflow/serving/predict",
        inputs={k: TensorSpec(k, f"{k}:0", d, s) for k, (d, s) in inputs.items()},
        outputs={k: TensorSpec(k, f"{k}:0", d, (-1,)) for k, d in outputs.items()},
    )


BASE = {"serving_default": _sig({"x": (FLOAT, (-1, 3))}, {"y": FLOAT})}


@pytest.mark.parametrize(
    ("candidate", "words"),
    [
        ({"predict": _sig({"x": (FLOAT, (-1, 3))}, {"y": FLOAT})}, "signature 'serving_default' is gone"),
        ({"serving_default": _sig({"z": (FLOAT, (-1, 3))}, {"y": FLOAT})}, "input 'x' is gone"),
        ({"serving_default": _sig({"x": (INT64, (-1, 3))}, {"y": FLOAT})}, "changed from DT_FLOAT to DT_INT64"),
        ({"serving_default": _sig({"x": (FLOAT, (-1, 4))}, {"y": FLOAT})}, "shape tightened from [-1, 3] to [-1, 4]"),
        ({"serving_default": _sig({"x": (FLOAT, (2, 3))}, {"y": FLOAT})}, "shape tightened"),
        ({"serving_default": _sig({"x": (FLOAT, (-1, 3)), "w": (FLOAT, None)}, {"y": FLOAT})}, "also requires input 'w'"),
        ({"serving_default": _sig({"x": (FLOAT, (-1, 3))}, {"scores": FLOAT})}, "output 'y' is gone"),
        ({"serving_default": _sig({"x": (FLOAT, (-1, 3))}, {"y": STRING})}, "output 'y' changed from DT_FLOAT to DT_STRING"),
    ],
)  # fmt: skip
def test_a_signature_break_is_named(candidate: dict[str, SignatureSpec], words: str) -> None:
    problem = gates.signature_break(BASE, candidate)
    assert problem is not None and words in problem


def test_relaxing_and_adding_is_compatible() -> None:
    relaxed = {
        "serving_default": _sig({"x": (FLOAT, (-1, -1))}, {"y": FLOAT, "extra": FLOAT}),
        "new": _sig({"q": (STRING, None)}, {"a": FLOAT}),
    }
    assert gates.signature_break(BASE, relaxed) is None
    assert (
        gates.signature_break(BASE, {"serving_default": _sig({"x": (FLOAT, None)}, {"y": FLOAT})})
        is None
    )


dims = st.lists(st.integers(-1, 4), min_size=0, max_size=3)


@given(old=dims, new=dims)
def test_a_shape_is_compatible_exactly_when_the_new_one_takes_every_tensor_the_old_takes(
    old: list[int], new: list[int]
) -> None:
    import itertools

    sizes = [[d] if d != -1 else [1, 2, 5] for d in old]  # -1: sizes no fixed dim can all match
    admitted = itertools.product(*sizes)
    fits = all(
        len(new) == len(shape) and all(n in (-1, s) for n, s in zip(new, shape, strict=True))
        for shape in admitted
    )
    assert gates._accepts(tuple(new), tuple(old)) == fits
    assert gates._accepts(None, tuple(old))  # unknown rank takes anything
    assert gates._accepts(tuple(new), None) == (new is None)


def test_nonfinite_counts_float_outputs_only() -> None:
    outputs = {
        "y": np.array([1.0, np.nan, np.inf, -np.inf], np.float32),
        "ok": np.array([1.0, 2.0]),
        "classes": np.array([1, 2]),
        "names": np.array([b"a"], object),
    }
    assert gates.count_nonfinite(outputs) == {"y": 3}


@given(
    new=st.lists(st.floats(1e-5, 1.0), min_size=1, max_size=200),
    old=st.lists(st.floats(1e-5, 1.0), min_size=1, max_size=200),
    ratio=st.sampled_from([0.0, 1.5, 3.0]),
)
@settings(max_examples=200)
def test_latency_refuses_exactly_past_the_ratio_and_the_floor(
    new: list[float], old: list[float], ratio: float
) -> None:
    problem = gates.latency_regression(new, old, ratio)
    p_new, p_old = gates.percentile(new), gates.percentile(old)
    breach = bool(ratio) and p_new > ratio * p_old and p_new - p_old >= gates.LATENCY_FLOOR_SECONDS
    assert (problem is not None) == breach
    if problem:
        assert f"{p_new * 1e3:.3f} ms" in problem and f"{p_old * 1e3:.3f} ms" in problem


def test_divergence_of_floats_and_top1() -> None:
    old = {"y": np.array([1.0, 10.0]), "scores": np.array([[0.9, 0.1], [0.2, 0.8]])}
    close = {"y": np.array([1.001, 10.01]), "scores": np.array([[0.89, 0.11], [0.21, 0.79]])}
    assert gates.divergence([(close, old)], 0.02) is None
    far = {"y": np.array([1.5, 10.0]), "scores": old["scores"]}
    assert "differs from the serving version's by up to 0.5" in (
        gates.divergence([(far, old)], 0.01) or ""
    )
    flipped = {"y": old["y"], "scores": np.array([[0.1, 0.9], [0.2, 0.8]])}
    problem = gates.divergence([(flipped, old)], 0.9)
    assert problem is None  # 50% agreement is enough for a limit of 0.9
    problem = gates.divergence([(flipped, old)], 0.3)
    assert problem is not None and ("top-1 agrees" in problem or "differs" in problem)
    classes_old = {"classes": np.array([1, 2, 3, 4])}
    classes_new = {"classes": np.array([1, 2, 3, 5])}
    assert "3 of 4 rows" in (gates.divergence([(classes_new, classes_old)], 0.1) or "")
    assert gates.divergence([(classes_new, classes_old)], 0.0) is None  # off


@given(share=st.floats(0.0, 1.0), keys=st.lists(st.text(min_size=1, max_size=12), max_size=30))
def test_a_routing_key_always_lands_on_the_same_side(share: float, keys: list[str]) -> None:
    for key in keys:
        first = canary.diverted(share, key, 0.0)
        assert all(canary.diverted(share, key, draw) == first for draw in (0.3, 0.99))
        assert first == (zlib.crc32(key.encode("utf-8", "surrogatepass")) / 2**32 < share)


def test_random_draws_divert_the_share() -> None:
    rng = np.random.default_rng(1)
    hits = sum(canary.diverted(0.2, "", float(d)) for d in rng.random(20000))
    assert abs(hits / 20000 - 0.2) < 0.01
    keyed = sum(canary.diverted(0.2, f"user-{i}", 0.0) for i in range(20000))
    assert abs(keyed / 20000 - 0.2) < 0.02


SETTINGS = RolloutSettings(canary_percent=10, canary_seconds=60, canary_min_requests=100)


def test_judge_rolls_back_on_the_first_nonfinite_answer_beyond_the_previous_rate() -> None:
    decision = canary.judge(WatchStats(3, 0, 1), WatchStats(1000, 0, 0), SETTINGS, 1.0)
    assert (
        decision.action == "rollback" and "1 of 3 canary answers held NaN or Inf" in decision.reason
    )
    # A model that answers NaN now and then is held to its own record.
    assert (
        canary.judge(WatchStats(100, 0, 1), WatchStats(1000, 0, 20), SETTINGS, 1.0).action
        == "watch"
    )


def test_judge_errors_against_the_previous_rate() -> None:
    assert (
        canary.judge(WatchStats(10, 2, 0), WatchStats(1000, 0, 0), SETTINGS, 1.0).action
        == "rollback"
    )
    assert (
        canary.judge(WatchStats(10, 1, 0), WatchStats(1000, 0, 0), SETTINGS, 1.0).action == "watch"
    )
    # 5% of failures is fine when the previous version failed as often.
    assert (
        canary.judge(
            WatchStats(200, 10, 0, 0.001, 190), WatchStats(2000, 100, 0, 0.001, 1900), SETTINGS, 1.0
        ).action
        == "watch"
    )


def test_judge_latency_needs_enough_timed_runs_and_the_floor() -> None:
    slow, fast = WatchStats(200, 0, 0, 0.050, 200), WatchStats(2000, 0, 0, 0.001, 2000)
    assert canary.judge(slow, fast, SETTINGS, 1.0).action == "rollback"
    few = WatchStats(50, 0, 0, 0.050, 50)
    assert canary.judge(few, fast, SETTINGS, 1.0).action == "watch"
    tiny = WatchStats(200, 0, 0, 0.0004, 200)
    assert canary.judge(tiny, WatchStats(2000, 0, 0, 0.0001, 2000), SETTINGS, 1.0).action == "watch"


def test_a_watch_times_every_run_but_the_first_on_each_thread() -> None:
    watch = canary.Watch()
    for thread in (1, 2, 3):
        watch.note(0.05, thread=thread)  # each thread's first run: slow, not timed
    for thread in (1, 2, 3) * 3:
        watch.note(0.001, thread=thread)
    watch.note(0.002, error=True, thread=4)
    stats = watch.stats()
    assert (stats.requests, stats.errors, stats.timed) == (13, 1, 9)
    assert stats.p99 == pytest.approx(0.001)


def test_two_watches_are_compared_over_the_same_span_of_time() -> None:
    """The canary's slow runs at t=1..30 are older than anything the previous version kept:
    compared over the span both cover, they are left out of both."""
    now = [0.0]
    fresh, old = canary.Watch(clock=lambda: now[0]), canary.Watch(clock=lambda: now[0])
    fresh.note(0.0, thread=1)
    old.note(0.0, thread=1)
    for t in range(1, 31):
        now[0] = t
        fresh.note(0.010, thread=1)  # contention the previous version will have forgotten
    for t in range(31, 31 + canary.WATCH_LATENCIES):
        now[0] = t
        old.note(0.001, thread=1)
        if t % 4 == 0:
            fresh.note(0.001, thread=1)
    assert fresh.stats().p99 == pytest.approx(0.010)  # alone: the old contention counts
    new_stats, old_stats = canary.compared(fresh, old, settle=0.0)
    assert new_stats.p99 == pytest.approx(0.001) and old_stats.p99 == pytest.approx(0.001)
    assert new_stats.timed == canary.WATCH_LATENCIES // 4
    # The canary's first seconds are left out too: from t=5000 on only.
    new_stats, old_stats = canary.compared(fresh, old, settle=5000.0)
    assert old_stats.timed == 31 + canary.WATCH_LATENCIES - 5000


@given(requests=st.integers(0, 1000), elapsed=st.floats(0, 120))
def test_promotion_needs_the_window_and_the_minimum(requests: int, elapsed: float) -> None:
    decision = canary.judge(
        WatchStats(requests, 0, 0, 0.001, requests),
        WatchStats(5000, 0, 0, 0.001, 5000),
        SETTINGS,
        elapsed,
    )
    assert (decision.action == "promote") == (elapsed >= 60 and requests >= 100)


class _Version:
    """A version the gate runner can call: y = f(x)."""

    def __init__(self, fn: object, sig: dict[str, SignatureSpec] | None = None) -> None:
        self.fn = fn
        self.signatures = sig or {"serving_default": _sig({"x": (FLOAT, (-1,))}, {"y": FLOAT})}

    def run(
        self, signature: str, inputs: object, output_filter: object = ()
    ) -> tuple[str, dict[str, np.ndarray]]:
        return "serving_default", {"y": self.fn(inputs["x"])}  # type: ignore[index, operator]


def test_the_runner_stops_at_the_first_refusal_and_reports_each_gate() -> None:
    old = _Version(lambda x: x * 2)
    requests = [
        GateRequest("serving_default", {"x": np.array([v], np.float32)}) for v in (0.5, 2.0)
    ]
    report = run_gates(
        _Version(lambda x: np.where(x > 1, np.nan, x)), old, requests, RolloutSettings()
    )
    assert [o.gate for o in report.outcomes] == ["signature", "latency", "finite"]
    assert report.refused is not None
    assert report.refused.refusal.startswith(
        "rejected by the finite gate: output 'y': 1 of 2 values"
    )
    report = run_gates(
        _Version(lambda x: x * 2.001), old, requests, RolloutSettings(gate_max_divergence=0.01)
    )
    assert [o.gate for o in report.outcomes] == ["signature", "latency", "finite", "divergence"]
    assert report.refused is None
    # Nothing serving: only the finite gate.
    report = run_gates(_Version(lambda x: x), None, requests, RolloutSettings())
    assert [o.gate for o in report.outcomes] == ["finite"]
