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
import time
from collections.abc import Callable
from types import FrameType
from typing import TYPE_CHECKING, Any

from swapserve.codecs import tfserving as tfserving_codec
from swapserve.config.model_lists import ConfigFileSource, ModelSource, RepositorySource
from swapserve.config.model_settings import ModelSettings
from swapserve.config.reload import ConfigPoller, ConfigReloader
from swapserve.config.settings import Settings
from swapserve.config.tfserving import version_batching
from swapserve.dataplane.admin import Admin, Coordinator
from swapserve.dataplane.gate import CallGate
from swapserve.dataplane.requests import DataPlane
from swapserve.errors import SwapserveError
from swapserve.model.manager import ModelManager
from swapserve.model.registry import ModelRegistry
from swapserve.model.rollout import Verdicts
from swapserve.model.version_loader import SavedModelLoader
from swapserve.observability.access_log import AccessLog
from swapserve.observability.calls import CallRecord
from swapserve.observability.metrics import Metrics
from swapserve.observability.recorder import CallRecorder
from swapserve.runtime import fds
from swapserve.runtime.fds import FdBudget
from swapserve.transport.access import Access
from swapserve.transport.calls import CallPath
from swapserve.transport.grpc.server import GrpcTransport, build_grpc_server

if TYPE_CHECKING:
    from swapserve.observability.request_log import RequestLog
    from swapserve.transport.http.server import RestServer

log = logging.getLogger(__name__)

CoordinatorFactory = Callable[[ModelRegistry], Coordinator]


class App:
    """A built server: the models, the data plane, and the transports in front of it."""

    def __init__(
        self,
        settings: Settings,
        registry: ModelRegistry,
        dataplane: DataPlane,
        admin: Admin,
        transports: Callable[[], tuple[GrpcTransport, RestServer | None]],
        *,
        metrics: Metrics,
        poller: ConfigPoller | None = None,
        request_log: RequestLog | None = None,
        join_when_ready: float | None = None,
    ) -> None:
        self.settings = settings
        self.registry = registry
        self.dataplane = dataplane
        self.admin = admin
        self.metrics = metrics
        self._transports = transports
        self._join_when_ready = join_when_ready
        self.grpc: GrpcTransport | None = None
        self.port = settings.port
        """The bound gRPC port (the real one when settings asked for port 0)."""
        self.rest: RestServer | None = None
        self.rest_port = settings.rest_port
        """The bound HTTP port (None: ``--rest-port`` not set)."""
        if join_when_ready is None:
            self._bind()
        self.metrics_port: int | None = None
        """The bound metrics port once started (None: metrics off)."""
        self.metrics_host = settings.host
        """Where the metrics endpoint listens (a worker's private one: loopback)."""
        self._metrics_http: Any = None
        self._poller = poller
        self.request_log = request_log
        """The request log, closed (flushed) at stop."""

    def _bind(self) -> None:
        self.grpc, self.rest = self._transports()
        self.port = self.grpc.port
        self.rest_port = self.rest.port if self.rest is not None else None

    def start(self) -> None:
        """Starts watching export roots, the metrics endpoint, and answering RPCs (with
        ``join_when_ready``: binding the ports only once every model serves, or that many
        seconds have passed -- a restarted ``--workers`` worker must not take connections on
        the shared port before it can answer them)."""
        self.registry.start()
        if self.settings.metrics_port is not None:
            self._metrics_http, _, self.metrics_port = self.metrics.serve(
                self.metrics_host, self.settings.metrics_port
            )
            log.info("metrics on http://%s:%d/metrics", self.metrics_host, self.metrics_port)
        if self.grpc is None:
            self._await_models(self._join_when_ready or 0.0)
            self._bind()
        assert self.grpc is not None
        self.grpc.start()
        if self.rest is not None:
            self.rest.start()
            log.info("HTTP on %s:%d", self.settings.host, self.rest_port)
        self.admin.coordinator.start()
        if self._poller is not None:
            self._poller.start()
        log.info("listening on %s:%d", self.settings.host, self.port)

    def _await_models(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not self.registry.all_serving() and time.monotonic() < deadline:
            time.sleep(0.05)
        if not self.registry.all_serving():
            log.warning("joining the port after %.0fs with models not serving yet: %s",
                        seconds, self.dataplane.not_ready_reason())  # fmt: skip

    def reload_config(self) -> None:
        """Re-reads the config file (SIGHUP); errors are logged and the running config kept."""
        if self.admin.reloader is None:
            return
        try:
            self.admin.reloader.reload()
        except SwapserveError as err:
            log.error("config reload failed: %s", err)
        except Exception:
            log.exception("config reload failed")

    def drain(self) -> None:
        """Health goes NOT_SERVING for good; requests are still served (load balancers and
        ``round_robin`` clients move away meanwhile)."""
        self.dataplane.gate.drain()
        if self.grpc is not None:
            self.grpc.health.shutdown()

    def stop(self, grace: float | None = None, stop_transport: bool = True) -> None:
        """Refuses new calls with UNAVAILABLE, waits up to ``grace`` for the accepted ones to
        finish (no longer: as soon as the last one is done), then unloads.

        Args:
            grace: the longest wait for calls in progress (default: ``grace_seconds``).
            stop_transport: stop the gRPC server too. ``serve`` leaves it to the process exit:
                gRPC's shutdown cancels calls that arrived but were not yet picked up
                (clients see CANCELLED, which they do not retry), while closing the sockets
                by exiting makes them see UNAVAILABLE.
        """
        grace = self.settings.grace_seconds if grace is None else grace
        if self._poller is not None:
            self._poller.stop()
        if self.grpc is not None:
            self.grpc.health.shutdown()
        self.dataplane.gate.close("the server is shutting down; retry on another replica")
        if not self.dataplane.gate.wait_idle(grace):
            log.warning(
                "%d calls still running after the %.1fs grace period; stopping anyway",
                self.dataplane.gate.inflight,
                grace,
            )
        self.admin.coordinator.stop()
        if stop_transport and self.grpc is not None:
            self.grpc.stop(0)
            if self.rest is not None:
                self.rest.stop()
        if self.request_log is not None:
            self.request_log.close()
        self.registry.close(timeout=grace)
        if self._metrics_http is not None:
            self._metrics_http.shutdown()
            self._metrics_http.server_close()
        if self.grpc is not None:
            self.grpc.flush()
        log.info("stopped")


def create_app(
    settings: Settings,
    reuse_port: bool = False,
    fixed_models: bool = False,
    coordinator: CoordinatorFactory | None = None,
    *,
    join_when_ready: float | None = None,
    verdicts: Verdicts | None = None,
) -> App:
    """Builds (but does not start) the server for ``settings``; port 0 binds a free port.

    Args:
        settings: the server's settings.
        reuse_port: share the port with other processes (``--workers``).
        fixed_models: refuse config changes that add or remove models (``--workers``).
        coordinator: builds the coordinator of admin changes (default: this process only).
        join_when_ready: bind the ports at start, once every model serves (at most this many
            seconds); None: bind now.
        verdicts: rollout outcomes shared with other processes (``--workers``); None: this
            process gates and judges alone.

    Raises:
        SettingsError: invalid settings or an address that cannot be bound.
    """
    settings.validate()
    metrics = Metrics(settings.rest_metrics_path is not None, settings.model_repository is not None)

    # Warm-up records are TF Serving's PredictionLog: the codec decodes them for the core.
    batching_file = version_batching if settings.version_batching_file else None
    loader = SavedModelLoader(tfserving_codec.warmup_request, batching_file)

    def manager(model: ModelSettings) -> ModelManager:
        return ModelManager(
            model, settings.session, loader=loader, events=metrics, verdicts=verdicts
        )

    names = {m.name for m in settings.models}
    registry = ModelRegistry(
        (manager(m) for m in settings.models), metrics, factory=manager,
        fixed_models=fixed_models, unloaded=names - settings.loaded_at_start(names),
        explicit=settings.startup_models is not None,
    )  # fmt: skip
    source = _model_source(settings)
    reloader = (
        ConfigReloader(registry, source, metrics, settings.config_settle_seconds)
        if source is not None
        else None
    )
    seconds = _poll_seconds(settings)
    observers: list[Callable[[CallRecord], None]] = []
    if settings.access_log:
        observers.append(AccessLog(settings.access_log_sample))
    request_log = None
    if settings.request_log is not None:
        from swapserve.observability.request_log import RequestLog  # noqa: PLC0415 (TensorFlow, when used)

        request_log = RequestLog.from_settings(settings, metrics)
        observers.append(request_log)
    gate = CallGate()
    dataplane = DataPlane(
        registry, gate, metrics.stats, problems=(lambda: source.problems) if source else None
    )
    admin = Admin(
        registry,
        gate,
        reloader,
        coordinator(registry) if coordinator is not None else None,
        max_admin=settings.max_admin_rpcs,
        defaults=settings.model_defaults,
        explicit=settings.startup_models is not None,
    )
    calls = CallPath(
        CallRecorder(metrics, dataplane.known, observers),
        Access(settings.admin_token, settings.token, settings.allow_remote_admin),
    )

    def transports() -> tuple[GrpcTransport, RestServer | None]:
        budget = fd_budget(settings)
        grpc_transport = build_grpc_server(
            settings, dataplane, admin, calls, max_connections=budget.grpc, reuse_port=reuse_port
        )
        rest = _rest_server(
            settings, dataplane, admin, calls, metrics, budget=budget, reuse_port=reuse_port
        )
        return grpc_transport, rest

    poller = None
    if seconds is not None and reloader is not None:
        poller = ConfigPoller(reloader, seconds)
    return App(
        settings,
        registry,
        dataplane,
        admin,
        transports,
        metrics=metrics,
        poller=poller,
        request_log=request_log,
        join_when_ready=join_when_ready,
    )


def _rest_server(
    settings: Settings,
    dataplane: DataPlane,
    admin: Admin,
    calls: CallPath,
    metrics: Metrics,
    *,
    budget: FdBudget,
    reuse_port: bool,
) -> RestServer | None:
    """The HTTP port with every route (None: ``--rest-port`` not set; aiohttp only if used)."""
    if settings.rest_port is None:
        return None
    from swapserve.transport.http.api import HttpApi  # noqa: PLC0415
    from swapserve.transport.http.health import HealthRoutes  # noqa: PLC0415
    from swapserve.transport.http.kserve_v2 import KServeV2Routes  # noqa: PLC0415
    from swapserve.transport.http.server import RestServer  # noqa: PLC0415
    from swapserve.transport.http.tfserving import TFServingRoutes  # noqa: PLC0415
    from swapserve.transport.http.triton_extensions import TritonExtensionRoutes  # noqa: PLC0415

    api = HttpApi(calls, cors=settings.cors)
    api.add(TFServingRoutes(api, dataplane).routes())
    api.add(KServeV2Routes(api, dataplane, admin, settings.otel).routes())
    api.add(TritonExtensionRoutes(api, tracing=settings.otel).routes())
    api.add(HealthRoutes(dataplane, metrics.exposition, settings.rest_metrics_path or "").routes())
    return RestServer(settings, api, budget.http, budget.http_backlog, reuse_port)


def fd_budget(settings: Settings) -> FdBudget:
    """Raises the open-file limit and shares it between the ports (logged at start)."""
    limit = fds.raise_soft_limit()
    budget = fds.budget(
        limit, fds.open_count(), settings.max_http_connections, settings.max_grpc_connections
    )
    log.info(
        "open-file limit %d: up to %d gRPC and %d HTTP connections, %d descriptors kept free",
        budget.limit, budget.grpc, budget.http if settings.rest_port is not None else 0,
        budget.reserve,
    )  # fmt: skip
    return budget


def _model_source(settings: Settings) -> ModelSource | None:
    """Where a config reload reads the models from (None: the one model of the flags)."""
    defaults = settings.model_defaults
    if settings.config_path is not None:
        return ConfigFileSource(settings.config_path, defaults)
    if settings.model_repository is not None:
        base = defaults or ModelSettings("defaults", settings.model_repository)
        return RepositorySource(settings.model_repository, base, served=settings.models)
    return None


def _poll_seconds(settings: Settings) -> float | None:
    """How often the model source is polled: ``--config-poll-seconds``; a repository is
    always polled (every ``--poll-seconds`` unless told), as Triton's poll mode does."""
    if settings.config_poll_seconds is not None or settings.model_repository is None:
        return settings.config_poll_seconds or None  # 0: never
    return settings.model_defaults.poll_seconds if settings.model_defaults else 1.0


def serve(
    app: App,
    interrupt: bool = True,
    started: str = "",
    on_started: Callable[[App], None] | None = None,
) -> None:
    """Runs ``app`` until SIGTERM/SIGINT (a second one exits at once), re-reading the config
    file on SIGHUP; then shuts down as a rolling update needs it: health NOT_SERVING at once,
    serving on for ``drain_seconds`` (SIGTERM only), then new calls refused with UNAVAILABLE,
    the accepted ones finished (up to ``grace_seconds``), models unloaded, and the process
    exits -- as soon as the last call is done. Must run on the main thread; does not return.

    Args:
        app: the built server.
        interrupt: stop on SIGINT too (a ``--workers`` worker ignores it: its supervisor
            decides, and a Ctrl-C reaches the whole process group).
        started: logged once serving (default: the models and their export roots).
        on_started: called once serving (a worker publishes its metrics port).
    """
    from swapserve.runtime.heap import freeze_startup_objects  # noqa: PLC0415

    freeze_startup_objects()
    stopping = threading.Event()
    drain = [app.settings.drain_seconds]  # SIGINT (a person at a terminal) skips the drain

    def on_signal(signum: int, frame: FrameType | None) -> None:
        if stopping.is_set():
            log.warning("received %s again; exiting at once", signal.Signals(signum).name)
            os._exit(1)
        log.info("received %s; shutting down", signal.Signals(signum).name)
        if signum == signal.SIGINT:
            drain[0] = 0.0
        stopping.set()

    def on_hangup(signum: int, frame: FrameType | None) -> None:
        # Loading models takes a while: not in the signal handler.
        threading.Thread(target=app.reload_config, name="config-reload", daemon=True).start()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal if interrupt else signal.SIG_IGN)
    if app.admin.reloader is not None:
        signal.signal(signal.SIGHUP, on_hangup)
    app.start()
    if on_started is not None:
        on_started(app)
    if started:
        log.info("%s", started)
    else:
        if app.settings.model_repository is not None:
            log.info("serving the model repository %s", app.settings.model_repository)
        for model in app.settings.models:
            log.info("serving model %s from %s%s", model.name, model.export_root, model.batching)
    while not stopping.wait(0.25):
        pass  # wake up now and then: a signal taken by another thread runs its handler here
    app.drain()
    if drain[0] > 0:
        log.info("health is NOT_SERVING; still serving for %.1fs (--drain-seconds)", drain[0])
        time.sleep(drain[0])  # a second signal exits at once
    app.stop(stop_transport=False)
    time.sleep(_LINGER)  # the last answers leave the process
    logging.shutdown()
    os._exit(0)  # closes every connection: see App.stop


_LINGER = 0.1
"""Seconds between the last call ending and the exit, for its answer to be written out."""
