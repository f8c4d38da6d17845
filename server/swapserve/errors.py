"""Domain errors. Each carries the name of the gRPC status it maps to.

The predictor raises these without importing grpc; the transport turns ``status`` into a
``grpc.StatusCode`` in one place (``swapserve.transport.grpc.errors``). Messages are written for the
client: they name the offending input and what was expected, and never include a traceback.
"""

from __future__ import annotations


class SwapserveError(Exception):
    """Base class; ``status`` is a ``grpc.StatusCode`` member name."""

    status = "INTERNAL"

    def __init__(self, message: str, servable: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.servable = servable
        """For a request no loaded version answers: TF Serving's words for what was asked
        (``Latest(m)``, ``Specific(m, 7)``), so its surfaces can answer in its text."""


class InvalidArgument(SwapserveError):
    """The request is malformed or does not fit the signature."""

    status = "INVALID_ARGUMENT"


class NotFound(SwapserveError):
    """Unknown model, or a version that is not loaded / not on disk."""

    status = "NOT_FOUND"


class FailedPrecondition(SwapserveError):
    """Unknown signature (as TF Serving answers), or a version that failed to load."""

    status = "FAILED_PRECONDITION"


class Unavailable(SwapserveError):
    """The model has no version loaded yet, or the server is shutting down."""

    status = "UNAVAILABLE"


class Unauthenticated(SwapserveError):
    """A call that needs a token and presented none."""

    status = "UNAUTHENTICATED"


class PermissionDenied(SwapserveError):
    """An admin RPC from a peer that may not use it."""

    status = "PERMISSION_DENIED"


class ResourceExhausted(SwapserveError):
    """Too much work queued or a result too large."""

    status = "RESOURCE_EXHAUSTED"


class DeadlineExceeded(SwapserveError):
    """The model did not answer within the request's deadline."""

    status = "DEADLINE_EXCEEDED"


class Internal(SwapserveError):
    """A fault on our side; details go to the log, not to the client."""

    status = "INTERNAL"


class LoadError(Exception):
    """A version could not be loaded or failed its warm-up; the message says why."""


# TensorFlow's OpError codes are the canonical gRPC codes (tensorflow/core/protobuf/error_codes).
_TF_CODE_NAMES = {
    1: "CANCELLED",
    2: "UNKNOWN",
    3: "INVALID_ARGUMENT",
    4: "DEADLINE_EXCEEDED",
    5: "NOT_FOUND",
    6: "ALREADY_EXISTS",
    7: "PERMISSION_DENIED",
    8: "RESOURCE_EXHAUSTED",
    9: "FAILED_PRECONDITION",
    10: "ABORTED",
    11: "OUT_OF_RANGE",
    12: "UNIMPLEMENTED",
    13: "INTERNAL",
    14: "UNAVAILABLE",
    15: "DATA_LOSS",
    16: "UNAUTHENTICATED",
}


class ModelRunError(SwapserveError):
    """TensorFlow rejected a run (e.g. a data-dependent shape check inside the graph)."""

    def __init__(self, message: str, tf_code: int) -> None:
        super().__init__(message)
        self.status = _TF_CODE_NAMES.get(tf_code, "INTERNAL")
