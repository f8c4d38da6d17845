"""Builds the ``grpc.Server`` with every API on one port; ``swapserve.app`` starts and stops it."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection, reflection_pb2, reflection_pb2_grpc

from swapserve.apis import kserve_v2, pool, tfserving
from swapserve.config.channel_args import parse_channel_arguments
from swapserve.config.model_settings import SettingsError
from swapserve.config.settings import Settings
from swapserve.dataplane.admin import Admin
from swapserve.dataplane.requests import DataPlane
from swapserve.observability import tracing
from swapserve.runtime.rpc_pool import ElasticPool, blocking
from swapserve.transport.calls import CallPath
from swapserve.transport.grpc.health import HealthReporter
from swapserve.transport.grpc.interceptors import TokenInterceptor
from swapserve.transport.grpc.kserve_v2 import KServeV2Servicer
from swapserve.transport.grpc.services import add_service
from swapserve.transport.grpc.swapserve_v1 import PredictionServicer
from swapserve.transport.grpc.tfserving import TFServingModelServicer, TFServingPredictionServicer
from swapserve_client._proto.swapserve.v1 import prediction_pb2, prediction_pb2_grpc

#: Every API served on the port, by full gRPC service name.
SERVICES = (
    prediction_pb2.DESCRIPTOR.services_by_name["PredictionService"].full_name,
    tfserving.PREDICTION_SERVICE,
    tfserving.MODEL_SERVICE,
    kserve_v2.SERVICE,
)

log = logging.getLogger(__name__)


class _Reflection(reflection.ReflectionServicer):
    """Reflection's one RPC is a stream that holds its thread while the client keeps it open
    (grpcurl, Postman): it steps out of the active threads for that time."""

    def ServerReflectionInfo(  # type: ignore[override]  # noqa: N802 -- the stub says None
        self, request_iterator: Any, context: Any
    ) -> Iterator[Any]:
        parent: Any = super().ServerReflectionInfo
        answers: Iterator[Any] = parent(request_iterator, context)
        with blocking():
            yield from answers


@dataclass
class GrpcTransport:
    """A built gRPC server, its bound port, its health reporter and the trace flusher."""

    server: grpc.Server
    port: int
    health: HealthReporter
    flush_traces: Callable[[], None] | None = None

    def start(self) -> None:
        """Starts answering RPCs."""
        self.server.start()

    def stop(self, grace: float) -> None:
        """Health goes NOT_SERVING, new RPCs are refused, in-flight ones get ``grace`` seconds."""
        self.health.shutdown()
        self.server.stop(grace).wait()

    def flush(self) -> None:
        """Sends the last spans (with ``--otel``)."""
        if self.flush_traces is not None:
            self.flush_traces()


def connection_options(settings: Settings, max_connections: int) -> list[tuple[str, int]]:
    """gRPC core channel args that bound connections: how many may be open (past it gRPC core
    closes new ones at accept, so the port cannot fill the fd table), a handshake deadline (a
    socket that never sends the HTTP/2 preface is closed), an idle limit, and keepalive pings
    that find vanished peers. Clients may ping every 10 s (their keepalive) without being sent
    away."""

    def ms(seconds: float) -> int:
        return int(seconds * 1000)

    options = [
        ("grpc.max_allowed_incoming_connections", max_connections),
        ("grpc.server_handshake_timeout_ms", ms(settings.handshake_timeout_seconds)),
        ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
        ("grpc.keepalive_permit_without_calls", 1),
    ]
    if settings.max_connection_idle_seconds:
        options.append(("grpc.max_connection_idle_ms", ms(settings.max_connection_idle_seconds)))
    if settings.keepalive_seconds:
        options += [
            ("grpc.keepalive_time_ms", ms(settings.keepalive_seconds)),
            ("grpc.keepalive_timeout_ms", 20_000),
        ]
    return options


def _with_user_arguments(ours: list[tuple[str, int]], text: str) -> list[tuple[str, int | str]]:
    """``--grpc-channel-arguments`` in place of ours where they name the same key (gRPC core
    takes the first of two, so replacing is the only way theirs win)."""
    theirs = parse_channel_arguments(text)
    given = {key for key, _ in theirs}
    return [*theirs, *(o for o in ours if o[0] not in given)]


def build_grpc_server(
    settings: Settings,
    dataplane: DataPlane,
    admin: Admin,
    calls: CallPath,
    *,
    max_connections: int,
    reuse_port: bool = False,
) -> GrpcTransport:
    """Binds (but does not start) the gRPC server; port 0 binds a free port.

    Args:
        settings: host, port, TLS, tokens, limits.
        dataplane: what every servicer calls.
        admin: the admin calls (Reload, Unload, config).
        calls: the one call path (records, errors, the access rule).
        max_connections: the connection cap (from the fd budget).
        reuse_port: share the port with other processes (``--workers``); off otherwise, so
            that a second server on a taken port fails instead of silently sharing it.

    Raises:
        SettingsError: an address that cannot be bound.
    """
    interceptors: list[grpc.ServerInterceptor] = []  # type: ignore[type-arg]
    flush_traces = None
    if settings.otel:
        trace_interceptor, flush_traces = tracing.interceptor()
        interceptors.append(trace_interceptor)  # outermost: rejected calls are traced too
    if calls.access.checks_tokens:
        # Without tokens it would pass every call on: not installing it saves its Python per RPC.
        interceptors.append(TokenInterceptor(calls.access))
    server = grpc.server(
        # Admin calls wait on loads: they get threads of their own (the data plane bounds them)
        # and step out of the active count while they wait (``rpc_pool.blocking``).
        ElasticPool(  # type: ignore[arg-type]  # grpc's stub names ThreadPoolExecutor
            limit=settings.grpc_threads + settings.max_admin_rpcs,
            active=min(settings.active_threads, settings.grpc_threads),
        ),
        interceptors=interceptors,
        maximum_concurrent_rpcs=settings.max_concurrent_rpcs,
        options=_with_user_arguments(
            [
                ("grpc.max_send_message_length", settings.max_message_bytes),
                ("grpc.max_receive_message_length", settings.max_message_bytes),
                ("grpc.so_reuseport", 1 if reuse_port else 0),
                *connection_options(settings, max_connections),
            ],
            settings.grpc_channel_arguments,
        ),
    )
    prediction_pb2_grpc.add_PredictionServiceServicer_to_server(  # type: ignore[no-untyped-call]
        PredictionServicer(dataplane, admin, calls), server
    )
    add_service(
        server,
        tfserving.PREDICTION_SERVICE,
        TFServingPredictionServicer(dataplane, calls, settings.max_message_bytes),
    )
    add_service(server, tfserving.MODEL_SERVICE, TFServingModelServicer(dataplane, admin, calls))
    add_service(server, kserve_v2.SERVICE, KServeV2Servicer(dataplane, admin, calls, settings.otel))
    health = HealthReporter(dataplane, SERVICES)
    health_pb2_grpc.add_HealthServicer_to_server(health.servicer, server)
    health_name = health_pb2.DESCRIPTOR.services_by_name["Health"].full_name
    # Reflection reads one pool: ours, with swapserve's own API, health and reflection added.
    reflection_pool = pool.reflection_pool(
        prediction_pb2.DESCRIPTOR, health_pb2.DESCRIPTOR, reflection_pb2.DESCRIPTOR
    )
    reflection_pb2_grpc.add_ServerReflectionServicer_to_server(
        _Reflection((*SERVICES, health_name, reflection.SERVICE_NAME), pool=reflection_pool), server
    )
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
        if settings.grpc_socket_path is not None:  # TF Serving serves its socket in the clear
            address = f"unix:{settings.grpc_socket_path}"
            if server.add_insecure_port(address) == 0:
                raise RuntimeError("bind failed")
    except RuntimeError as err:
        raise SettingsError(f"cannot listen on {address}: {err}") from None
    if port == 0:
        raise SettingsError(f"cannot listen on {address}")
    return GrpcTransport(server, port, health, flush_traces)
