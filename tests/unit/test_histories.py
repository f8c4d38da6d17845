"""``ModelManager`` over random version histories (hypothesis stateful testing).

Versions appear (good, broken or half-written), settle, get fixed, are deleted; Reload pins and
unpins; config reloads move labels -- against a fake loader and a fake clock, with the real
discovery, records, policy and serving map. After every step the invariants that matter to a
user hold:

- a version that cannot load never serves;
- version-0 requests go to the newest settled, loadable version the policy (or pin) allows;
- a labelled version stays loaded while it is on disk and loadable;
- once something serves, the model never goes back to serving nothing;
- no version is ever loaded twice at the same time.
"""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path

from fakes import FakeLoader, remove_version, write_version
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from swapserve.config.model_settings import ModelSettings, SessionSettings, VersionPolicy
from swapserve.errors import SwapserveError
from swapserve.model.manager import ModelManager
from swapserve.model.records import State

SETTLE = 1.0
VERSIONS = st.integers(1, 6)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Histories(RuleBasedStateMachine):
    """The model of the world: which versions are on disk, whether they load, since when their
    files are unchanged; the manager must agree with it after every step."""

    def __init__(self) -> None:
        super().__init__()
        self._tmp = tempfile.TemporaryDirectory()
        self.root = Path(self._tmp.name)
        self.clock = Clock()
        self.loader = FakeLoader()
        # version -> [good, complete, since]: ``since`` is when a scan first saw the current
        # file set (None: not seen yet) -- a version settles SETTLE seconds after that.
        self.disk: dict[int, list] = {}  # type: ignore[type-arg]
        self.pinned = 0
        self.labels: dict[str, int] = {}
        self.served_ever = False
        self.manager: ModelManager | None = None

    @initialize(
        policy=st.one_of(
            st.integers(1, 3).map(lambda n: VersionPolicy(latest=n)),
            st.lists(VERSIONS, min_size=1, max_size=3, unique=True).map(
                lambda s: VersionPolicy(specific=tuple(sorted(s)))
            ),
        ),
        initial=st.lists(VERSIONS, max_size=4, unique=True),
    )
    def start(self, policy: VersionPolicy, initial: list[int]) -> None:
        """A server whose export root already holds some versions, started and settled."""
        self.settings = ModelSettings(
            "m",
            self.root,
            poll_seconds=SETTLE,
            reload_settle_seconds=0.0,
            warm_up=False,
            versions=policy,
        )
        self.manager = ModelManager(
            self.settings, SessionSettings(), loader=self.loader, clock=self.clock
        )
        for version in initial:
            self.export(version, good=True, complete=True)
        self.poll()
        self.time_passes(SETTLE)
        self.poll()

    @rule(version=VERSIONS, good=st.booleans())
    def export_and_settle(self, version: int, good: bool) -> None:
        """A whole export (the common case), then a poll period and a poll."""
        self.export(version, good, complete=True)
        self.poll()
        self.time_passes(SETTLE)
        self.poll()

    def teardown(self) -> None:
        if self.manager is not None:
            self.manager.close(timeout=5)
        self._tmp.cleanup()

    # ---- what happens on disk ------------------------------------------------------------------

    @rule(version=VERSIONS, good=st.booleans(), complete=st.booleans())
    def export(self, version: int, good: bool, complete: bool) -> None:
        """A new export, or new files in an existing one (a fix, a breakage, a partial copy)."""
        before = self.disk.get(version)
        if before is not None and before[:2] == [good, complete]:
            return  # the same files
        write_version(self.root, version, good, complete)
        self.disk[version] = [good, complete, None]  # a new file set: settling starts over

    @rule(version=VERSIONS)
    def delete(self, version: int) -> None:
        remove_version(self.root, version)
        self.disk.pop(version, None)

    @rule(seconds=st.sampled_from([0.3, 0.6, 1.0, 2.0]))
    def time_passes(self, seconds: float) -> None:
        self.clock.now += seconds

    # ---- what the server does ------------------------------------------------------------------

    def _scanned(self) -> None:
        """The manager scanned: it has now seen every current file set."""
        for entry in self.disk.values():
            if entry[2] is None:
                entry[2] = self.clock.now

    @rule()
    def poll(self) -> None:
        assert self.manager is not None
        self.manager.poll()
        self._scanned()
        self._after_poll(settled_only=True)

    @rule()
    def reload(self) -> None:
        """Reload(0): unpin and follow the policy now (Reload settles on its own)."""
        assert self.manager is not None
        try:  # noqa: SIM105 (the comment below says why)
            self.manager.reload(0)
        except SwapserveError:
            pass  # the newest failed, or nothing is complete: checked below either way
        self._scanned()
        self.pinned = 0
        self._after_poll(settled_only=False)

    @rule(version=VERSIONS)
    def pin(self, version: int) -> None:
        assert self.manager is not None
        try:
            self.manager.reload(version)
        except SwapserveError:
            self._scanned()
            return  # not on disk, incomplete or broken: the pin does not change
        self._scanned()
        self.pinned = version
        assert self.manager.serving_version == version

    @rule(label=st.sampled_from(["stable", "canary"]), version=st.none() | VERSIONS)
    def relabel(self, label: str, version: int | None) -> None:
        assert self.manager is not None
        labels = dict(self.labels)
        if version is None:
            labels.pop(label, None)
        else:
            labels[label] = version
        self.labels = labels
        self.manager.reconfigure(dataclasses.replace(self.settings, labels=labels))
        self._scanned()
        if self.manager.serving_version:
            self._after_poll(settled_only=True)

    # ---- checks --------------------------------------------------------------------------------

    def _loadable(self, settled_only: bool) -> list[int]:
        """Versions that may serve, newest first: settled (unless Reload) good exports, and
        loaded versions still complete on disk (touching a loaded version's files does not
        unload it)."""
        assert self.manager is not None
        loaded = set(self.manager.loaded_versions)
        return sorted(
            (
                v
                for v, (good, complete, since) in self.disk.items()
                if complete
                and (
                    v in loaded
                    or (
                        good
                        and (
                            not settled_only
                            or (since is not None and self.clock.now - since >= SETTLE)
                        )
                    )
                )
            ),
            reverse=True,
        )

    def _after_poll(self, settled_only: bool) -> None:
        assert self.manager is not None
        served = self.manager.serving_version
        loadable = self._loadable(settled_only)
        policy = self.settings.versions
        if self.pinned:
            wanted = [self.pinned] if self.pinned in loadable else []
        else:
            wanted = [v for v in loadable if not policy.specific or v in policy.specific]
        if wanted:
            assert served == wanted[0], f"serving {served}, expected {wanted[0]}"
            for v in self.labels.values():
                if v in loadable:
                    assert v in self.manager.loaded_versions, f"labelled {v} not loaded"

    @invariant()
    def never_serves_a_broken_version(self) -> None:
        if self.manager is None:
            return
        served = self.manager.serving_version
        if served:
            self.served_ever = True
            assert self.loader.open[served] == 1
            states = {v.version: v.state for v in self.manager.status().versions}
            assert states[served] is State.AVAILABLE
        else:
            assert not self.served_ever, "the model went back to serving nothing"

    @invariant()
    def pinned_version_serves(self) -> None:
        if self.manager is not None and self.pinned:
            assert self.manager.serving_version == self.pinned

    @invariant()
    def never_loaded_twice(self) -> None:
        if self.manager is None:
            return
        assert self.manager.wait_unloaded(5)
        assert all(n <= 1 for n in self.loader.max_open.values()), self.loader.max_open
        for version in self.manager.loaded_versions:
            assert self.loader.open[version] == 1


Histories.TestCase.settings = settings(max_examples=200, stateful_step_count=20, deadline=None)
test_histories = Histories.TestCase
