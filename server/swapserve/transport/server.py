"""Building, starting and stopping the gRPC server: used by ``main()`` and by the tests."""

from __future__ import annotations

import logging
from concurrent import futures
from dataclasses import dataclass

import grpc

from swapserve.model.manager import ModelManager
from swapserve.model.registry import ModelRegistry
from swapserve.settings import Settings, SettingsError
from swapserve.transport.prediction import PredictionServicer
from swapserve_client._proto.swapserve.v1 import prediction_pb2_grpc as pb_grpc

log = logging.getLogger(__name__)


@dataclass
class SwapServer:
    """A built server: gRPC server, bound port and the model registry behind it."""

    server: grpc.Server
    port: int
    registry: ModelRegistry
    settings: Settings

    def start(self) -> None:
        """Starts watching export roots and answering RPCs."""
        self.registry.start()
        self.server.start()
        log.info("listening on %s:%d", self.settings.host, self.port)

    def stop(self, grace: float | None = None) -> None:
        """Stops accepting RPCs, lets in-flight ones finish within ``grace``, then unloads."""
        grace = self.settings.grace_seconds if grace is None else grace
        self.server.stop(grace).wait()
        self.registry.close(timeout=grace)
        log.info("stopped")


def create_server(settings: Settings) -> SwapServer:
    """Builds (but does not start) a server for ``settings``; port 0 binds a free port.

    Raises:
        SettingsError: invalid settings or an address that cannot be bound.
    """
    settings.validate()
    registry = ModelRegistry(ModelManager(m, settings.session) for m in settings.models)
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=settings.grpc_threads, thread_name_prefix="rpc"),
        options=[
            ("grpc.max_send_message_length", settings.max_message_bytes),
            ("grpc.max_receive_message_length", settings.max_message_bytes),
            ("grpc.so_reuseport", 0),
        ],
    )
    pb_grpc.add_PredictionServiceServicer_to_server(  # type: ignore[no-untyped-call]
        PredictionServicer(registry, settings.allow_remote_admin), server
    )
    host = settings.host
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    address = f"{host}:{settings.port}"
    try:
        port = server.add_insecure_port(address)
    except RuntimeError as err:
        raise SettingsError(f"cannot listen on {address}: {err}") from None
    if port == 0:
        raise SettingsError(f"cannot listen on {address}")
    return SwapServer(server, port, registry, settings)
