"""``swapserve --workers N``: N server processes on one port, and the supervisor that runs them.

Each worker (``SO_REUSEPORT``; the kernel spreads connections across them) has its own models
and watchers -- Python threads share one GIL, processes do not -- and runs the same serve loop as
a single process (``swapserve.app.serve``), with a ``ClusterCoordinator`` so admin changes reach
every worker. The main process only supervises: it restarts a worker that dies, passes SIGHUP on,
and stops them all on SIGTERM/SIGINT.
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
import urllib.request
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from dataclasses import replace
from types import FrameType
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry

from swapserve.cluster.coordinator import ClusterCoordinator, ClusterState
from swapserve.cluster.metrics_merge import MergedCollector, Scrapes
from swapserve.cluster.rollouts import ClusterVerdicts
from swapserve.config.model_settings import SettingsError
from swapserve.config.settings import Settings
from swapserve.observability import logs
from swapserve.observability.metrics_http import serve_registry
from swapserve.runtime import quiet

if TYPE_CHECKING:
    from swapserve.app import App

log = logging.getLogger(__name__)


def _reserve_port(host: str, port: int) -> socket.socket:
    """Binds host:port with SO_REUSEPORT and keeps it, so port 0 becomes one port all workers
    share and no other program takes it meanwhile (as grpc's multiprocessing example does)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    return sock


JOIN_WHEN_READY_SECONDS = 300.0
"""How long a restarted worker waits for its models before taking connections regardless."""


def _worker_main(
    settings: Settings,
    worker: int,
    state: ClusterState,
    level: str,
    log_format: str,
    *,
    restarted: bool = False,
) -> None:
    logs.configure(level, log_format, worker=worker)
    with quiet.loading_tensorflow(level == "DEBUG"):
        import tensorflow  # noqa: F401, PLC0415 (its first import, held quiet)

        from swapserve.app import create_app, serve  # noqa: PLC0415 (after logging setup)

    if settings.metrics_port is not None:  # a private endpoint the supervisor scrapes
        settings = replace(settings, metrics_port=0)
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
    app = create_app(
        settings,
        reuse_port=True,
        fixed_models=True,  # the shared state has one slot per model at start
        coordinator=lambda registry: ClusterCoordinator(state, worker, registry),
        # The other workers serve meanwhile: a restarted one takes its share of connections
        # only when it can answer them (at first start, all start together and readiness
        # tells the truth).
        join_when_ready=JOIN_WHEN_READY_SECONDS if restarted else None,
        verdicts=ClusterVerdicts(state, [m.name for m in settings.models]),
    )
    app.metrics_host = "127.0.0.1"

    def publish(started: App) -> None:
        state.metrics_ports[worker] = started.metrics_port or 0

    serve(
        app,
        interrupt=False,
        started=f"worker {worker} serving (pid {os.getpid()})",
        on_started=publish,
    )


def _current_config(settings: Settings) -> Settings:
    """A (re)started worker takes the config file as it is now, if it lists the same models."""
    if settings.config_path is None:
        return settings
    from swapserve.config.yaml_file import load_models  # noqa: PLC0415

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
    rest = settings.rest_port
    with (
        closing(_reserve_port(settings.host, settings.port)) as sock,
        closing(_reserve_port(settings.host, rest if rest is not None else 0)) as rest_sock,
    ):
        port = sock.getsockname()[1]
        settings = replace(settings, port=port)
        if rest is not None:  # port 0 becomes one HTTP port every worker shares too
            settings = replace(settings, rest_port=rest_sock.getsockname()[1])
        state = ClusterState(ctx, workers, len(settings.models))
        stopping = threading.Event()

        def on_signal(signum: int, frame: FrameType | None) -> None:
            log.info("received %s; stopping %d workers", signal.Signals(signum).name, workers)
            stopping.set()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)

        def spawn(worker: int, restarted: bool = False) -> multiprocessing.context.SpawnProcess:
            proc = ctx.Process(
                target=_worker_main,
                args=(settings, worker, state, log_level, log_format),
                kwargs={"restarted": restarted},
                name=f"swapserve-worker-{worker}",
            )
            proc.start()
            log.info("worker %d started (pid %s)", worker, proc.pid)
            return proc

        procs = [spawn(w) for w in range(workers)]
        scrapes = Scrapes()
        metrics_http = (
            _serve_merged_metrics(settings, state, scrapes)
            if settings.metrics_port is not None
            else None
        )
        if settings.config_path is not None:
            signal.signal(signal.SIGHUP, lambda *_: _forward(procs, signal.SIGHUP))
        log.info("listening on %s:%d (%d workers)", settings.host, port, workers)
        restarts: list[float] = []
        while not stopping.wait(0.2):
            for w, proc in enumerate(procs):
                if proc.is_alive():
                    continue
                state.alive[w] = 0
                state.metrics_ports[w] = 0
                scrapes.retire(w)
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
                procs[w] = spawn(w, restarted=True)
        _stop_all(procs, settings.drain_seconds + settings.grace_seconds)
        if metrics_http is not None:
            metrics_http.shutdown()
            metrics_http.server_close()
    return 0 if len(restarts) <= 5 * workers else 1


def _serve_merged_metrics(settings: Settings, state: ClusterState, scrapes: Scrapes) -> Any:
    """``--metrics-port`` answered by the supervisor: every live worker's metrics, merged, with
    the counters of workers that died."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(MergedCollector(lambda: _scrape_workers(state), scrapes))
    assert settings.metrics_port is not None
    server, _, port = serve_registry(registry, settings.host, settings.metrics_port)
    log.info("metrics on http://%s:%d/metrics (the sum over workers)", settings.host, port)
    return server


def _scrape_workers(state: ClusterState) -> dict[tuple[int, int], str]:
    """Every live worker's metrics text, by (worker, port) (one that does not answer in time:
    "")."""
    workers = [w for w in range(state.workers) if state.alive[w] and state.metrics_ports[w]]
    ports = [state.metrics_ports[w] for w in workers]

    def one(port: int) -> str:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
                return str(reply.read().decode())
        except OSError as err:
            log.warning("worker metrics on port %d did not answer: %s", port, err)
            return ""

    with ThreadPoolExecutor(max_workers=max(1, len(ports))) as pool:
        return dict(zip(zip(workers, ports, strict=True), pool.map(one, ports), strict=True))


def _forward(procs: Sequence[multiprocessing.context.SpawnProcess], signum: int) -> None:
    log.info("forwarding %s to the workers", signal.Signals(signum).name)
    for proc in procs:
        if proc.is_alive() and proc.pid is not None:
            os.kill(proc.pid, signum)


def _stop_all(procs: Sequence[multiprocessing.context.SpawnProcess], grace: float) -> None:
    """SIGTERM to every worker (each drains, then finishes its calls), then waits ``grace`` (the
    drain plus the grace period) and 10 s more before killing."""
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
