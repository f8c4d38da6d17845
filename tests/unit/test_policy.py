"""The version policy as a pure function: examples, then invariants over random views."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from swapserve.config.model_settings import VersionPolicy
from swapserve.model.policy import Plan, PolicyView, default_version, plan, preference, remote_keep

LATEST1 = VersionPolicy()


def view(
    eligible: tuple[int, ...],
    loaded: set[int] = frozenset(),  # type: ignore[assignment]
    failed: set[int] = frozenset(),  # type: ignore[assignment]
    pinned: int = 0,
    labelled: set[int] = frozenset(),  # type: ignore[assignment]
    policy: VersionPolicy = LATEST1,
) -> PolicyView:
    return PolicyView(
        tuple(sorted(eligible, reverse=True)),
        frozenset(loaded),
        frozenset(failed),
        pinned,
        frozenset(labelled),
        policy,
    )


def test_loads_the_newest_then_serves_it_alone() -> None:
    assert plan(view((3, 2, 1), loaded={1})) == Plan(load=3)
    assert plan(view((3, 2, 1), loaded={1, 3})) == Plan(serve=3, keep=frozenset({3}))


def test_a_broken_newest_is_skipped_for_the_next_older() -> None:
    assert plan(view((3, 2), loaded={1}, failed={3})) == Plan(load=2)
    assert plan(view((3, 2), loaded={1, 2}, failed={3})) == Plan(serve=2, keep=frozenset({2}))


def test_nothing_loadable_changes_nothing() -> None:
    assert plan(view((2,), loaded={1}, failed={2})).changes_nothing
    assert plan(view((), loaded={1})).changes_nothing


def test_latest_n_specific_pin_and_labels() -> None:
    latest2 = VersionPolicy(latest=2)
    assert plan(view((3, 2, 1), loaded={3, 2, 1}, policy=latest2)) == Plan(
        serve=3, keep=frozenset({3, 2})
    )
    specific = VersionPolicy(specific=(1, 3))
    assert plan(view((3, 2, 1), loaded={3, 1}, policy=specific)) == Plan(
        serve=3, keep=frozenset({3, 1})
    )
    assert plan(view((3, 2, 1), loaded={3, 2}, pinned=2)) == Plan(serve=2, keep=frozenset({2}))
    assert plan(view((3, 2, 1), loaded={3}, labelled={1})) == Plan(load=1)
    assert plan(view((3, 2, 1), loaded={3, 1}, labelled={1})) == Plan(
        serve=3, keep=frozenset({3, 1})
    )


def test_default_and_preference() -> None:
    assert default_version([5, 4], 0, LATEST1) == 5
    assert default_version([5, 4], 4, LATEST1) == 4
    assert default_version([5, 4], 0, VersionPolicy(specific=(4,))) == 4
    assert default_version([], 0, LATEST1) == 0
    assert preference([5, 4, 3], 0, VersionPolicy(latest=2)) == ([5, 4, 3], 2)


def test_remote_keep() -> None:
    keep = remote_keep(
        [9, 8, 7, 6],
        listed={9, 8, 7, 6, 5},
        loaded={5},
        labelled={6},
        failed={9},
        pinned=0,
        policy=LATEST1,
    )
    # 9 failed (kept so it is not fetched again), 8 is the newest loadable, 6 is labelled, 5 loaded.
    assert keep == {9, 8, 6, 5}
    assert remote_keep(
        [9, 8], {9, 8}, loaded=(), labelled=(), failed=(), pinned=8, policy=LATEST1
    ) == {8}


versions = st.lists(st.integers(1, 12), unique=True, max_size=8)
policies = st.one_of(
    st.integers(1, 4).map(lambda n: VersionPolicy(latest=n)),
    st.lists(st.integers(1, 12), min_size=1, max_size=4, unique=True).map(
        lambda s: VersionPolicy(specific=tuple(sorted(s)))
    ),
)


@settings(max_examples=300, deadline=None)
@given(
    eligible=versions,
    loaded=versions,
    failed=versions,
    labelled=versions,
    pin=st.integers(0, 12),
    policy=policies,
)
def test_planning_converges_to_the_rules(
    eligible: list[int],
    loaded: list[int],
    failed: list[int],
    labelled: list[int],
    pin: int,
    policy: VersionPolicy,
) -> None:
    """Following the plan (every load succeeds unless the version is in ``failed``) ends in a
    state that obeys the rules, and never loads a version twice."""
    failed = [v for v in failed if v not in loaded]  # a loaded version did load
    state_loaded = set(loaded)
    state_failed: set[int] = set()
    eligible_t = tuple(sorted(eligible, reverse=True))
    loads: list[int] = []
    for _ in range(50):
        step = plan(view(eligible_t, state_loaded, state_failed, pin, set(labelled), policy))
        if not step.load:
            break
        assert step.load not in state_loaded and step.load not in state_failed
        assert step.load in eligible_t
        loads.append(step.load)
        (state_failed if step.load in failed else state_loaded).add(step.load)
    else:
        raise AssertionError("the plan did not converge")
    assert len(loads) == len(set(loads)), "a version was loaded twice"
    good = [v for v in eligible_t if v not in failed]
    wanted, limit = preference(good, pin, policy)
    if step.changes_nothing:
        assert not wanted[:limit], "something wanted could serve, yet nothing changed"
        return
    assert step.serve == wanted[0], "version-0 requests go to the newest wanted version"
    assert step.serve not in failed
    assert set(wanted[:limit]) <= step.keep
    assert {v for v in good if v in labelled} <= step.keep, "a labelled version was dropped"
    assert step.keep <= state_loaded
