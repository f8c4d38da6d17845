"""The HTTP port's own routes: liveness (``/healthz``), readiness (``/readyz``) and, with
``--rest-metrics-path``, Prometheus text (TF Serving's monitoring path). They run on the event
loop itself, so a probe is answered even while every worker thread is busy."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from swapserve.dataplane.requests import DataPlane
from swapserve.transport.http.api import (
    HttpRequest,
    HttpResponse,
    Route,
    error_response,
    json_response,
)

MetricsText = Callable[[], tuple[bytes, str]]
"""The exposition and its content type (the app passes the metrics registry's)."""


class HealthRoutes:
    """``/healthz``, ``/readyz`` and the metrics path."""

    def __init__(
        self, dataplane: DataPlane, metrics: MetricsText | None = None, metrics_path: str = ""
    ) -> None:
        self._dp = dataplane
        self._metrics = metrics
        self._metrics_path = metrics_path

    def routes(self) -> list[Route]:
        """The routes, all inline."""
        out = [
            Route(("GET",), "/healthz", self._healthz, inline=True),
            Route(("GET",), "/readyz", self._readyz, inline=True),
        ]
        if self._metrics is not None and self._metrics_path:
            out.append(Route(("GET",), self._metrics_path, self._scrape, inline=True))
        return out

    def _healthz(self, request: HttpRequest, params: Mapping[str, str]) -> HttpResponse:
        return json_response(200, {"status": "live"})

    def _readyz(self, request: HttpRequest, params: Mapping[str, str]) -> HttpResponse:
        reason = self._dp.not_ready_reason()
        return (
            json_response(200, {"status": "ready"}) if not reason else error_response(503, reason)
        )

    def _scrape(self, request: HttpRequest, params: Mapping[str, str]) -> HttpResponse:
        if self._metrics is None:  # routes() adds this route only with metrics
            return error_response(404, f"Not Found: GET {request.path}")
        body, content_type = self._metrics()
        return HttpResponse(200, {"Content-Type": content_type}, body)
