"""Worker processes that share one port: supervision and converging admin changes.

``swapserve --workers N`` runs N server processes on one port (``SO_REUSEPORT``; the kernel
spreads connections across them), each with its own predictor and watcher: Python threads share
one GIL, processes do not. The main process only supervises: it restarts a worker that dies
and stops them all on SIGTERM/SIGINT.

Every worker watches the same export root, so new exports reach all of them on their own. An
admin call (Reload, RepositoryModelLoad/Unload, HandleReloadConfigRequest) reaches one worker
through one connection; that worker applies it, then broadcasts it through shared memory and
answers only once every live worker has applied it too -- or with FAILED_PRECONDITION naming
the workers that could not (they keep serving what they had). A restarted worker applies the
last broadcast change (e.g. a pin) when it starts.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import multiprocessing.context
import os
import signal
import socket
import threading
import time
from collections.abc import Sequence
from contextlib import closing
from dataclasses import replace
from types import FrameType
from typing import TYPE_CHECKING, Any

from swapserve import logs
from swapserve.errors import FailedPrecondition, SwapserveError, Unavailable
from swapserve.settings import Settings, SettingsError

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
        self.lock = ctx.Lock()
        self.generation: Any = ctx.Array("q", models, lock=False)  # broadcasts per model
        self.target: Any = ctx.Array("q", models, lock=False)  # version; 0 newest; -1 unload
        self.acked: Any = ctx.Array("q", workers * models, lock=False)  # generation applied
        self.failed: Any = ctx.Array("q", workers * models, lock=False)  # generation that failed
        self.alive: Any = ctx.Array("b", workers, lock=False)

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

    def reload(self, manager: ModelManager, version: int) -> ReloadOutcome:
        """Reloads here, then on every worker; answers when all serve it."""
        outcome = manager.reload(version)
        self._broadcast(manager, version, outcome.version)
        return outcome

    def unload(self, manager: ModelManager) -> int:
        """Unloads here, then on every worker."""
        version = manager.unload()
        self._broadcast(manager, _UNLOAD, 0)
        return version

    def _broadcast(self, manager: ModelManager, target: int, serving: int) -> None:
        state, m = self._state, self._index[manager.name]
        with state.lock:
            generation = state.generation[m] + 1
            state.generation[m] = generation
            state.target[m] = target
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
                manager.reload(target)
        except SwapserveError as err:
            state.failed[state.slot(self._worker, m)] = generation
            log.error("model %s: broadcast change failed on this worker: %s", manager.name, err)
        except Exception:
            state.failed[state.slot(self._worker, m)] = generation
            log.exception("model %s: broadcast change failed on this worker", manager.name)
        finally:
            state.acked[state.slot(self._worker, m)] = generation


def _reserve_port(host: str, port: int) -> socket.socket:
    """Binds host:port with SO_REUSEPORT and keeps it, so port 0 becomes one port all workers
    share and no other program takes it meanwhile (as grpc's multiprocessing example does)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    return sock


def _worker_main(
    settings: Settings, worker: int, state: ClusterState, level: str, log_format: str
) -> None:
    logs.configure(level, log_format, worker=worker)
    from swapserve.heap import freeze_startup_objects  # noqa: PLC0415
    from swapserve.transport.server import create_server  # noqa: PLC0415 (after logging setup)

    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the supervisor decides
    if settings.metrics_port:  # one metrics endpoint per worker: port, port + 1, ...
        settings = replace(settings, metrics_port=settings.metrics_port + worker)
    settings = _current_config(settings)
    # Each worker mirrors a remote export root into its own cache: workers never prune or
    # replace files another one has loaded (at the cost of one download per worker).
    settings = replace(
        settings,
        models=tuple(
            replace(m, export_root=m.export_root / f"worker-{worker}") if m.remote else m
            for m in settings.models
        ),
    )
    server = create_server(settings, reuse_port=True)
    freeze_startup_objects()
    server.registry.fixed_models = True  # the shared state has one slot per model at start
    coordinator = ClusterCoordinator(state, worker, server.registry)
    server.registry.coordinator = coordinator
    if settings.config_path is not None:
        signal.signal(
            signal.SIGHUP,
            lambda *_: threading.Thread(target=server.reload_config, daemon=True).start(),
        )
    server.start()
    coordinator.start()
    log.info("worker %d serving (pid %d)", worker, os.getpid())
    while not stopping.wait(0.25):
        pass  # wake up now and then: a signal taken by another thread runs its handler here
    coordinator.stop()
    server.stop()


def _current_config(settings: Settings) -> Settings:
    """A (re)started worker takes the config file as it is now, if it lists the same models."""
    if settings.config_path is None:
        return settings
    from swapserve.config import load_models  # noqa: PLC0415

    try:
        models = load_models(settings.config_path)
    except SettingsError as err:
        log.error("config file not usable (%s); starting with the config read at start", err)
        return settings
    if sorted(m.name for m in models) != sorted(m.name for m in settings.models):
        log.error("the config file lists other models now; starting with the config read at start")
        return settings
    return replace(settings, models=models)


def run_workers(settings: Settings, workers: int, log_level: str, log_format: str = "text") -> int:
    """Runs and supervises ``workers`` server processes until SIGTERM/SIGINT; returns the exit
    code."""
    ctx = mp.get_context("spawn")  # TensorFlow is not fork-safe
    with closing(_reserve_port(settings.host, settings.port)) as sock:
        port = sock.getsockname()[1]
        settings = replace(settings, port=port)
        state = ClusterState(ctx, workers, len(settings.models))
        stopping = threading.Event()

        def on_signal(signum: int, frame: FrameType | None) -> None:
            log.info("received %s; stopping %d workers", signal.Signals(signum).name, workers)
            stopping.set()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)

        def spawn(worker: int) -> multiprocessing.context.SpawnProcess:
            proc = ctx.Process(
                target=_worker_main,
                args=(settings, worker, state, log_level, log_format),
                name=f"swapserve-worker-{worker}",
            )
            proc.start()
            log.info("worker %d started (pid %s)", worker, proc.pid)
            return proc

        procs = [spawn(w) for w in range(workers)]
        if settings.config_path is not None:
            signal.signal(signal.SIGHUP, lambda *_: _forward(procs, signal.SIGHUP))
        log.info("listening on %s:%d (%d workers)", settings.host, port, workers)
        restarts: list[float] = []
        while not stopping.wait(0.2):
            for w, proc in enumerate(procs):
                if proc.is_alive():
                    continue
                state.alive[w] = 0
                log.error(
                    "worker %d (pid %s) exited with %s; restarting", w, proc.pid, proc.exitcode
                )
                restarts = [t for t in restarts if t > time.monotonic() - 60] + [time.monotonic()]
                if len(restarts) > 5 * workers:
                    log.error(
                        "workers keep dying (%d restarts in a minute); giving up", len(restarts)
                    )
                    stopping.set()
                    break
                procs[w] = spawn(w)
        _stop_all(procs, settings.grace_seconds)
    return 0 if len(restarts) <= 5 * workers else 1


def _forward(procs: Sequence[multiprocessing.context.SpawnProcess], signum: int) -> None:
    log.info("forwarding %s to the workers", signal.Signals(signum).name)
    for proc in procs:
        if proc.is_alive() and proc.pid is not None:
            os.kill(proc.pid, signum)


def _stop_all(procs: Sequence[multiprocessing.context.SpawnProcess], grace: float) -> None:
    for proc in procs:
        if proc.is_alive():
            proc.terminate()  # SIGTERM: graceful in the worker
    deadline = time.monotonic() + grace + 10
    for proc in procs:
        proc.join(max(0.0, deadline - time.monotonic()))
        if proc.is_alive():
            log.warning("worker pid %s did not stop in time; killing it", proc.pid)
            proc.kill()
            proc.join()
    log.info("stopped")
