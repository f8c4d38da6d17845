"""``ClusterVerdicts``: the workers of ``--workers`` share one rollout per model.

- the gates run once: the worker that loads a version first gates it and publishes the outcome
  for its file set; the others apply it (a refused version is not even loaded again);
- every worker applies the same canary verdict: the first worker whose canary breaches (or
  whose window ends) publishes promote or rollback, and the others follow on their next tick;
- workers swap one at a time: a worker holds ``swap_lock`` while it loads, gates and swaps, and
  until its old version is released, so a model's peak memory across N workers is about
  (N+1)/N of steady instead of 2x (with a canary, each worker keeps both versions until the
  verdict: that is the canary's cost).

Everything lives in ``ClusterState``'s shared memory, indexed by the model's position among the
sorted names.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING

from swapserve.model.canary import Decision

if TYPE_CHECKING:
    from swapserve.cluster.coordinator import ClusterState

log = logging.getLogger(__name__)

TEXT_BYTES = 1024
"""Room for one refusal or verdict reason per model (longer ones are cut)."""

_ACTIONS = {"promote": 1, "rollback": 2}


def _put(array: object, m: int, text: str) -> None:
    data = text.encode("utf-8", "replace")[: TEXT_BYTES - 1]
    view = memoryview(array).cast("B")  # type: ignore[arg-type]
    start = m * TEXT_BYTES
    view[start : start + TEXT_BYTES] = data.ljust(TEXT_BYTES, b"\0")


def _get(array: object, m: int) -> str:
    view = memoryview(array).cast("B")  # type: ignore[arg-type]
    raw = bytes(view[m * TEXT_BYTES : (m + 1) * TEXT_BYTES])
    return raw.split(b"\0", 1)[0].decode("utf-8", "replace")


class ClusterVerdicts:
    """A worker's view of the shared rollout state (``rollout.Verdicts``)."""

    def __init__(self, state: ClusterState, models: Sequence[str]) -> None:
        self._state = state
        self._index = {name: i for i, name in enumerate(sorted(models))}

    def known(self, model: str, version: int, files: int) -> str | None:
        """The gate outcome another worker published for this version's files."""
        state, m = self._state, self._index[model]
        with state.lock:
            if state.verdict_version[m] != version or state.verdict_files[m] != files:
                return None
            return _get(state.verdict_text, m)

    def publish(self, model: str, version: int, files: int, refusal: str) -> None:
        """Records this version's gate outcome for the other workers."""
        state, m = self._state, self._index[model]
        with state.lock:
            state.verdict_version[m] = version
            state.verdict_files[m] = files
            _put(state.verdict_text, m, refusal)

    def decide(self, model: str, version: int, files: int, decision: Decision) -> Decision:
        """Publishes ``decision`` for the canary of ``version`` with these files unless a
        worker already did."""
        state, m = self._state, self._index[model]
        with state.lock:
            if self._same_locked(m, version, files) and state.decision_action[m]:
                return self._decision_locked(m)
            state.decision_version[m] = version
            state.decision_files[m] = files
            state.decision_action[m] = _ACTIONS[decision.action]
            _put(state.decision_text, m, decision.reason)
            return decision

    def decided(self, model: str, version: int, files: int) -> Decision | None:
        """The verdict a worker published for the canary of ``version`` with these files."""
        state, m = self._state, self._index[model]
        with state.lock:
            if not self._same_locked(m, version, files) or not state.decision_action[m]:
                return None
            return self._decision_locked(m)

    def _same_locked(self, m: int, version: int, files: int) -> bool:
        state = self._state
        return bool(state.decision_version[m] == version and state.decision_files[m] == files)

    def _decision_locked(self, m: int) -> Decision:
        action = next(a for a, n in _ACTIONS.items() if n == self._state.decision_action[m])
        return Decision(action, _get(self._state.decision_text, m) + " (decided by a worker)")

    @contextlib.contextmanager
    def exclusive(self, settle: Callable[[], object]) -> Iterator[None]:
        """One worker at a time loads, gates and swaps, and keeps the turn until ``settle``
        (its retired versions released) returns."""
        with self._state.swap_lock:
            try:
                yield
            finally:
                settle()
