"""Building, starting and stopping the gRPC server: used by ``main()`` and by the tests."""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent import futures
from dataclasses import dataclass
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from tensorflow_serving.apis import (
    model_service_pb2,
    model_service_pb2_grpc,
    prediction_service_pb2,
    prediction_service_pb2_grpc,
)
from tritonclient.grpc import service_pb2 as v2_pb2
from tritonclient.grpc import service_pb2_grpc as v2_pb2_grpc

from swapserve.config import load_models
from swapserve.errors import SwapserveError
from swapserve.metrics import Metrics
from swapserve.model.manager import ModelManager
from swapserve.model.registry import ModelRegistry
from swapserve.settings import ModelSettings, Settings, SettingsError
from swapserve.transport import tracing
from swapserve.transport.auth import TokenInterceptor
from swapserve.transport.health import HealthReporter
from swapserve.transport.kserve_v2 import KServeV2Servicer
from swapserve.transport.prediction import PredictionServicer
from swapserve.transport.tfserving import TFServingModelServicer, TFServingPredictionServicer
from swapserve_client._proto.swapserve.v1 import prediction_pb2, prediction_pb2_grpc

#: Every API served on the port, by full gRPC service name.
SERVICES = (
    prediction_pb2.DESCRIPTOR.services_by_name["PredictionService"].full_name,
    prediction_service_pb2.DESCRIPTOR.services_by_name["PredictionService"].full_name,
    model_service_pb2.DESCRIPTOR.services_by_name["ModelService"].full_name,
    v2_pb2.DESCRIPTOR.services_by_name["GRPCInferenceService"].full_name,
)

log = logging.getLogger(__name__)


@dataclass
class SwapServer:
    """A built server: gRPC server, bound port and the model registry behind it."""

    server: grpc.Server
    port: int
    registry: ModelRegistry
    settings: Settings
    health: HealthReporter

    metrics_port: int | None = None
    _metrics_http: Any = None
    flush_traces: Callable[[], None] | None = None

    def start(self) -> None:
        """Starts watching export roots, the metrics endpoint, and answering RPCs."""
        self.registry.start()
        if self.settings.metrics_port is not None:
            self._metrics_http, _, self.metrics_port = self.registry.metrics.serve(
                self.settings.host, self.settings.metrics_port
            )
            log.info("metrics on http://%s:%d/metrics", self.settings.host, self.metrics_port)
        self.server.start()
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
        self.health.shutdown()
        self.server.stop(grace).wait()
        self.registry.close(timeout=grace)
        if self._metrics_http is not None:
            self._metrics_http.shutdown()
            self._metrics_http.server_close()
        if self.flush_traces is not None:
            self.flush_traces()
        log.info("stopped")


def create_server(settings: Settings, reuse_port: bool = False) -> SwapServer:
    """Builds (but does not start) a server for ``settings``; port 0 binds a free port.

    Args:
        settings: the server's settings.
        reuse_port: share the port with other processes (``--workers``); off otherwise, so
            that a second server on a taken port fails instead of silently sharing it.

    Raises:
        SettingsError: invalid settings or an address that cannot be bound.
    """
    settings.validate()
    metrics = Metrics()

    def manager(model: ModelSettings) -> ModelManager:
        return ModelManager(model, settings.session, metrics=metrics)

    registry = ModelRegistry((manager(m) for m in settings.models), metrics, factory=manager)
    config_path = settings.config_path
    if config_path is not None:
        registry.config_source = lambda: load_models(config_path)
    interceptors: list[grpc.ServerInterceptor] = []  # type: ignore[type-arg]
    flush_traces = None
    if settings.otel:
        trace_interceptor, flush_traces = tracing.interceptor()
        interceptors.append(trace_interceptor)  # outermost: rejected calls are traced too
    if settings.admin_token is not None or settings.token is not None:
        # Without tokens it would pass every call on: not installing it saves its Python per RPC.
        interceptors.append(TokenInterceptor(settings.admin_token, settings.token))
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=settings.grpc_threads, thread_name_prefix="rpc"),
        interceptors=interceptors,
        maximum_concurrent_rpcs=settings.max_concurrent_rpcs,
        options=[
            ("grpc.max_send_message_length", settings.max_message_bytes),
            ("grpc.max_receive_message_length", settings.max_message_bytes),
            ("grpc.so_reuseport", 1 if reuse_port else 0),
        ],
    )
    # With an admin token the token is the gate, from any peer; without, loopback only.
    admin = settings.allow_remote_admin or settings.admin_token is not None
    prediction_pb2_grpc.add_PredictionServiceServicer_to_server(  # type: ignore[no-untyped-call]
        PredictionServicer(registry, admin), server
    )
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
        TFServingPredictionServicer(registry, settings.max_message_bytes), server
    )
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(
        TFServingModelServicer(registry, admin), server
    )
    v2_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(
        KServeV2Servicer(registry, admin), server
    )
    health = HealthReporter(registry, SERVICES)
    health_pb2_grpc.add_HealthServicer_to_server(health.servicer, server)
    health_name = health_pb2.DESCRIPTOR.services_by_name["Health"].full_name
    reflection.enable_server_reflection((*SERVICES, health_name, reflection.SERVICE_NAME), server)
    host = settings.host
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    address = f"{host}:{settings.port}"
    try:
        if settings.tls_cert is not None and settings.tls_key is not None:
            client_ca = settings.tls_client_ca
            credentials = grpc.ssl_server_credentials(
                [(settings.tls_key.read_bytes(), settings.tls_cert.read_bytes())],
                root_certificates=client_ca.read_bytes() if client_ca else None,
                require_client_auth=client_ca is not None,
            )
            port = server.add_secure_port(address, credentials)
        else:
            port = server.add_insecure_port(address)
    except RuntimeError as err:
        raise SettingsError(f"cannot listen on {address}: {err}") from None
    if port == 0:
        raise SettingsError(f"cannot listen on {address}")
    return SwapServer(server, port, registry, settings, health, flush_traces=flush_traces)
