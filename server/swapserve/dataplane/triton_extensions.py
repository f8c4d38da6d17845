"""Triton's extensions beyond the Open Inference Protocol that swapserve answers with the truth
rather than a bare 404/UNIMPLEMENTED, the same over HTTP and gRPC: shared memory (no region is
ever registered: tensors travel in the request) and trace settings (OpenTelemetry's, with
``--otel``; read-only, since OpenTelemetry's variables set them). Log settings are
``swapserve.observability.log_settings``.
"""

from __future__ import annotations

from typing import Any

from swapserve.errors import InvalidArgument

NO_SHARED_MEMORY = (
    "shared-memory regions are not supported by swapserve: send the tensor data in the request "
    "(JSON data, the binary tensor extension, or raw_input_contents over gRPC)"
)
TRACE_SETTINGS: dict[str, Any] = {
    "trace_mode": "opentelemetry",
    "trace_level": ["TIMESTAMPS"],
    "trace_rate": "1",
    "trace_count": "-1",
    "log_frequency": "0",
    "trace_file": "",
}
"""What ``--otel`` traces: one span per call, sampled as OpenTelemetry's ``OTEL_TRACES_SAMPLER``
says (every call by default)."""


def extensions(tracing: bool) -> list[str]:
    """The protocol extensions server metadata lists: those served as the protocol defines them
    (shared memory is answered, not served, so it is not listed)."""
    served = ["binary_tensor_data", "logging", "model_configuration", "model_repository",
              "statistics"]  # fmt: skip
    return [*served, "trace"] if tracing else served


def memory_status(region: str) -> list[Any]:
    """The registered regions (none); naming one is INVALID_ARGUMENT, as in Triton."""
    if region:
        raise InvalidArgument(
            f"Unable to find shared memory region: '{region}' ({NO_SHARED_MEMORY})"
        )
    return []


def memory_register(region: str) -> None:
    """Always INVALID_ARGUMENT, with the reason."""
    raise InvalidArgument(f"cannot register '{region}': {NO_SHARED_MEMORY}")


def trace_settings(tracing: bool, *, update: bool) -> dict[str, Any]:
    """The trace settings (``--otel``); an update is INVALID_ARGUMENT pointing to
    OpenTelemetry's variables, and so is any call with tracing off."""
    if not tracing:
        raise InvalidArgument(
            "tracing is off: start swapserve with --otel to trace every call with "
            "OpenTelemetry (exported over OTLP)"
        )
    if update:
        raise InvalidArgument(
            "trace settings come from OpenTelemetry's variables here "
            "(OTEL_TRACES_SAMPLER, OTEL_TRACES_SAMPLER_ARG, OTEL_EXPORTER_OTLP_ENDPOINT)"
        )
    return dict(TRACE_SETTINGS)
