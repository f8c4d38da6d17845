"""``grpc.health.v1.Health`` (grpcio-health-checking) kept in step with the data plane.

Every service, and the overall "" entry, is NOT_SERVING until every configured model has a
version serving, and again once shutdown begins. ``swapserve.liveness`` is SERVING for as long as
the process answers, whatever the models do: a liveness probe must not restart a server that is
only waiting for an export.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

from grpc_health.v1 import health, health_pb2

from swapserve.dataplane.requests import DataPlane

LIVENESS = "swapserve.liveness"


class HealthReporter:
    """Owns the health servicer and sets its statuses from the models' readiness."""

    def __init__(self, dataplane: DataPlane, services: Iterable[str]) -> None:
        self.servicer = health.HealthServicer(experimental_non_blocking=True)
        self._dataplane = dataplane
        self._services = ["", *services]
        self._lock = threading.Lock()  # guards _shutting_down and the statuses set
        self._shutting_down = False
        self.servicer.set(LIVENESS, health_pb2.HealthCheckResponse.SERVING)
        dataplane.subscribe(self.refresh)
        self.refresh()

    def refresh(self) -> None:
        """Recomputes the status of every service."""
        with self._lock:
            if self._shutting_down:
                return
            serving = self._dataplane.server_ready()
            status = (
                health_pb2.HealthCheckResponse.SERVING
                if serving
                else health_pb2.HealthCheckResponse.NOT_SERVING
            )
            for name in self._services:
                self.servicer.set(name, status)

    def shutdown(self) -> None:
        """Marks everything NOT_SERVING for good (load balancers drain us)."""
        with self._lock:
            self._shutting_down = True
            self.servicer.enter_graceful_shutdown()
