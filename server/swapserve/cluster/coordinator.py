"""Converging admin changes across ``--workers`` processes through shared memory.

Every worker watches the same export root, so new exports reach all of them on their own. An
admin call (Reload, RepositoryModelLoad/Unload) reaches one worker through one connection; that
worker applies it, then broadcasts it through shared memory and answers only once every live
worker has applied it too -- or with FAILED_PRECONDITION naming the workers that could not (they
keep serving what they had). A restarted worker applies the last broadcast change (e.g. a pin)
when it starts.
"""

from __future__ import annotations

import logging
import multiprocessing.context
import threading
import time
from typing import TYPE_CHECKING, Any

from swapserve.cluster.rollouts import TEXT_BYTES
from swapserve.errors import FailedPrecondition, SwapserveError, Unavailable

if TYPE_CHECKING:  # the supervisor process never imports TensorFlow
    from swapserve.model.manager import ModelManager, ReloadOutcome
    from swapserve.model.registry import ModelRegistry

log = logging.getLogger(__name__)

_UNLOAD = -1  # broadcast target meaning "unload"
_POLL = 0.05
_CONVERGE_SECONDS = 300.0


class ClusterState:
    """Shared memory for N workers x M models. Arrays are indexed [worker * models + model]."""

    def __init__(self, ctx: multiprocessing.context.SpawnContext, workers: int, models: int):
        self.workers, self.models = workers, models
        self.lock = ctx.Lock()  # across processes: guards the arrays below
        self.generation: Any = ctx.Array("q", models, lock=False)  # broadcasts per model
        self.target: Any = ctx.Array("q", models, lock=False)  # version; 0 newest; -1 unload
        self.force: Any = ctx.Array("b", models, lock=False)  # the broadcast reload is forced
        self.acked: Any = ctx.Array("q", workers * models, lock=False)  # generation applied
        self.failed: Any = ctx.Array("q", workers * models, lock=False)  # generation that failed
        self.alive: Any = ctx.Array("b", workers, lock=False)
        self.metrics_ports: Any = ctx.Array("i", workers, lock=False)  # private, 0: none yet
        # Rollouts (cluster/rollouts.py), per model: the last gate outcome and canary verdict.
        self.verdict_version: Any = ctx.Array("q", models, lock=False)
        self.verdict_files: Any = ctx.Array("q", models, lock=False)
        self.verdict_text: Any = ctx.Array("c", models * TEXT_BYTES, lock=False)
        self.decision_version: Any = ctx.Array("q", models, lock=False)
        self.decision_files: Any = ctx.Array("q", models, lock=False)
        self.decision_action: Any = ctx.Array("b", models, lock=False)  # 1 promote, 2 rollback
        self.decision_text: Any = ctx.Array("c", models * TEXT_BYTES, lock=False)
        self.swap_lock = ctx.Lock()  # across processes: one worker loads-and-swaps at a time

    def slot(self, worker: int, model: int) -> int:
        """Index into the per-worker arrays."""
        return worker * self.models + model


class ClusterCoordinator:
    """A worker's side: applies its own admin calls, broadcasts them, follows the others'."""

    def __init__(self, state: ClusterState, worker: int, registry: ModelRegistry) -> None:
        self._state = state
        self._worker = worker
        self._registry = registry
        # By name, so every worker agrees whatever order its config lists the models in.
        self._index = {name: i for i, name in enumerate(sorted(m.name for m in registry))}
        self._seen = [0] * state.models
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._follow, name="cluster", daemon=True)

    def start(self) -> None:
        """Applies the last broadcast change (a restarted worker), then follows new ones."""
        self._state.alive[self._worker] = 1
        for manager in self._registry:
            m = self._index[manager.name]
            generation = self._state.generation[m]
            if generation:
                self._apply(manager, m, generation)
        self._thread.start()

    def stop(self) -> None:
        """Stops following broadcasts."""
        self._state.alive[self._worker] = 0
        self._stop.set()
        self._thread.join(5)

    def reload(self, manager: ModelManager, version: int, force: bool = False) -> ReloadOutcome:
        """Reloads here, then on every worker; answers when all serve it."""
        outcome = manager.reload(version, force)
        self._broadcast(manager, version, outcome.version, force)
        return outcome

    def unload(self, manager: ModelManager) -> int:
        """Unloads here, then on every worker."""
        version = manager.unload()
        self._broadcast(manager, _UNLOAD, 0)
        return version

    def _broadcast(
        self, manager: ModelManager, target: int, serving: int, force: bool = False
    ) -> None:
        state, m = self._state, self._index[manager.name]
        with state.lock:
            generation = state.generation[m] + 1
            state.generation[m] = generation
            state.target[m] = target
            state.force[m] = force
        self._seen[m] = generation
        state.acked[state.slot(self._worker, m)] = generation
        deadline = time.monotonic() + _CONVERGE_SECONDS
        while True:
            pending = [
                w
                for w in range(state.workers)
                if state.alive[w] and state.acked[state.slot(w, m)] < generation
            ]
            if not pending:
                break
            if time.monotonic() > deadline:
                raise Unavailable(
                    f"workers {pending} did not apply the change within {_CONVERGE_SECONDS:.0f}s; "
                    "they will when they can"
                )
            time.sleep(_POLL)
        failed = [w for w in range(state.workers) if state.failed[state.slot(w, m)] == generation]
        if failed:
            what = "unload" if target == _UNLOAD else f"serve version {serving}"
            raise FailedPrecondition(
                f"worker {self._worker} now serves it, but workers {failed} could not {what} "
                f"for model '{manager.name}' (see their logs); they keep serving what they had"
            )

    def _follow(self) -> None:
        while not self._stop.wait(_POLL):
            for manager in self._registry:
                m = self._index[manager.name]
                generation = self._state.generation[m]
                if generation != self._seen[m]:
                    self._apply(manager, m, generation)

    def _apply(self, manager: ModelManager, m: int, generation: int) -> None:
        state, target = self._state, self._state.target[m]
        self._seen[m] = generation
        try:
            if target == _UNLOAD:
                manager.unload()
            else:
                manager.reload(target, bool(state.force[m]))
        except SwapserveError as err:
            state.failed[state.slot(self._worker, m)] = generation
            log.error("model %s: broadcast change failed on this worker: %s", manager.name, err)
        except Exception:
            state.failed[state.slot(self._worker, m)] = generation
            log.exception("model %s: broadcast change failed on this worker", manager.name)
        finally:
            state.acked[state.slot(self._worker, m)] = generation
