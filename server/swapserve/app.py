"""The application: settings -> metrics -> registry -> data plane -> transports, and the one
serve loop every process shape runs (the single process and each ``--workers`` worker).

``create_app`` builds everything with its collaborators passed in constructors; ``App`` owns
start, drain and stop; ``serve`` installs the signal handlers, freezes start-up objects out of
the garbage collector, starts, waits, and stops gracefully.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

from swapserve.config_file import load_models
from swapserve.dataplane import Coordinator, DataPlane
from swapserve.errors import SwapserveError
from swapserve.metrics import Metrics
from swapserve.model.manager import ModelManager
from swapserve.model.registry import ModelRegistry
from swapserve.settings import ModelSettings, Settings
from swapserve.transport.server import GrpcTransport, build_grpc_server

log = logging.getLogger(__name__)

CoordinatorFactory = Callable[[ModelRegistry], Coordinator]


class App:
    """A built server: the models, the data plane, and the transports in front of it."""

    def __init__(
        self,
        settings: Settings,
        registry: ModelRegistry,
        dataplane: DataPlane,
        grpc_transport: GrpcTransport,
    ) -> None:
        self.settings = settings
        self.registry = registry
        self.dataplane = dataplane
        self.grpc = grpc_transport
        self.port = grpc_transport.port
        """The bound gRPC port (the real one when settings asked for port 0)."""
        self.metrics_port: int | None = None
        """The bound metrics port once started (None: metrics off)."""
        self._metrics_http: Any = None

    def start(self) -> None:
        """Starts watching export roots, the metrics endpoint, and answering RPCs."""
        self.registry.start()
        if self.settings.metrics_port is not None:
            self._metrics_http, _, self.metrics_port = self.registry.metrics.serve(
                self.settings.host, self.settings.metrics_port
            )
            log.info("metrics on http://%s:%d/metrics", self.settings.host, self.metrics_port)
        self.grpc.start()
        self.dataplane.coordinator.start()
        log.info("listening on %s:%d", self.settings.host, self.port)

    def reload_config(self) -> None:
        """Re-reads the config file (SIGHUP); errors are logged and the running config kept."""
        try:
            self.registry.reload_config()
        except SwapserveError as err:
            log.error("config reload failed: %s", err)
        except Exception:
            log.exception("config reload failed")

    def stop(self, grace: float | None = None) -> None:
        """Stops accepting RPCs, lets in-flight ones finish within ``grace``, then unloads."""
        grace = self.settings.grace_seconds if grace is None else grace
        self.dataplane.coordinator.stop()
        self.grpc.stop(grace)
        self.registry.close(timeout=grace)
        if self._metrics_http is not None:
            self._metrics_http.shutdown()
            self._metrics_http.server_close()
        self.grpc.flush()
        log.info("stopped")


def create_app(
    settings: Settings,
    reuse_port: bool = False,
    fixed_models: bool = False,
    coordinator: CoordinatorFactory | None = None,
) -> App:
    """Builds (but does not start) the server for ``settings``; port 0 binds a free port.

    Args:
        settings: the server's settings.
        reuse_port: share the port with other processes (``--workers``).
        fixed_models: refuse config changes that add or remove models (``--workers``).
        coordinator: builds the coordinator of admin changes (default: this process only).

    Raises:
        SettingsError: invalid settings or an address that cannot be bound.
    """
    settings.validate()
    metrics = Metrics()

    def manager(model: ModelSettings) -> ModelManager:
        return ModelManager(model, settings.session, metrics=metrics)

    config_path = settings.config_path
    registry = ModelRegistry(
        (manager(m) for m in settings.models),
        metrics,
        factory=manager,
        fixed_models=fixed_models,
        config_source=(lambda: load_models(config_path)) if config_path is not None else None,
    )
    dataplane = DataPlane(
        registry,
        coordinator(registry) if coordinator is not None else None,
        max_admin=settings.max_admin_rpcs,
    )
    return App(settings, registry, dataplane, build_grpc_server(settings, dataplane, reuse_port))


def serve(app: App, interrupt: bool = True, started: str = "") -> None:
    """Runs ``app`` until SIGTERM/SIGINT (a second one exits at once), re-reading the config
    file on SIGHUP; then stops gracefully. Must run on the main thread.

    Args:
        app: the built server.
        interrupt: stop on SIGINT too (a ``--workers`` worker ignores it: its supervisor
            decides, and a Ctrl-C reaches the whole process group).
        started: logged once serving (default: the models and their export roots).
    """
    from swapserve.heap import freeze_startup_objects  # noqa: PLC0415

    freeze_startup_objects()
    stopping = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        if stopping.is_set():
            log.warning("received %s again; exiting at once", signal.Signals(signum).name)
            os._exit(1)
        log.info("received %s; shutting down", signal.Signals(signum).name)
        stopping.set()

    def on_hangup(signum: int, frame: FrameType | None) -> None:
        # Loading models takes a while: not in the signal handler.
        threading.Thread(target=app.reload_config, name="config-reload", daemon=True).start()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal if interrupt else signal.SIG_IGN)
    if app.settings.config_path is not None:
        signal.signal(signal.SIGHUP, on_hangup)
    app.start()
    if started:
        log.info("%s", started)
    else:
        for model in app.settings.models:
            log.info("serving model %s from %s", model.name, model.export_root)
    while not stopping.wait(0.25):
        pass  # wake up now and then: a signal taken by another thread runs its handler here
    app.stop()
