"""OpenTelemetry tracing, the optional extra ``otel`` (``--otel``).

One span per RPC (opentelemetry-instrumentation-grpc's server interceptor: method, peer, status
code), carrying the model name, exported over OTLP/gRPC. Where to send spans and how is configured
with OpenTelemetry's own environment variables (``OTEL_EXPORTER_OTLP_ENDPOINT``,
``OTEL_SERVICE_NAME``, ``OTEL_BSP_SCHEDULE_DELAY``, ...). Health checks and reflection are not
traced: probes would drown the traces of real requests.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from swapserve.config.model_settings import SettingsError

if TYPE_CHECKING:
    import grpc

_trace: Any = None  # the opentelemetry.trace module, once tracing is on


def interceptor() -> tuple[grpc.ServerInterceptor, Callable[[], None]]:  # type: ignore[type-arg]
    """The tracing server interceptor and the function that flushes spans at shutdown.

    Raises:
        SettingsError: the optional dependencies are not installed.
    """
    global _trace  # noqa: PLW0603 (one switch for the whole process)
    try:
        from opentelemetry import trace  # noqa: PLC0415 (optional dependency)
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (  # noqa: PLC0415
            OTLPSpanExporter,
        )
        from opentelemetry.instrumentation.grpc import (  # noqa: PLC0415
            filters,
            server_interceptor,
        )
        from opentelemetry.sdk.resources import Resource  # noqa: PLC0415
        from opentelemetry.sdk.trace import TracerProvider  # noqa: PLC0415
        from opentelemetry.sdk.trace.export import BatchSpanProcessor  # noqa: PLC0415
    except ImportError:
        raise SettingsError(
            "--otel needs the optional extra 'otel' (from a clone: pip install -c "
            "requirements-runtime.lock ./client '.[otel]')"
        ) from None
    name = os.environ.get("OTEL_SERVICE_NAME", "swapserve")
    provider = TracerProvider(resource=Resource.create({"service.name": name}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    untraced = filters.any_of(
        filters.service_prefix("grpc.health."), filters.service_prefix("grpc.reflection.")
    )
    _trace = trace
    traced = server_interceptor(  # type: ignore[no-untyped-call]
        tracer_provider=provider, filter_=filters.negate(untraced)
    )
    return traced, provider.shutdown


def annotate(model: str) -> str:
    """Adds the model name to the current RPC's span; returns its trace id as 32 hex digits
    ("" without ``--otel``), for the access log."""
    if _trace is None:
        return ""
    span = _trace.get_current_span()
    if model:
        span.set_attribute("swapserve.model", model)
    context = span.get_span_context()
    return f"{context.trace_id:032x}" if context.is_valid else ""
