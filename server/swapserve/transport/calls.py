"""The one call path of every transport: open a call's record, run it, map what went wrong to a
status, finish the record and hand it to the recorder.

A gRPC servicer method (``swapserve.transport.grpc.errors``) and an HTTP API call
(``swapserve.transport.http.api``) both go through ``CallPath``: the same access rule, the same
error mapping, the same record. Statuses are gRPC code names; HTTP answers with the status
``HTTP_STATUS`` gives each (and records the HTTP status, as its metrics always have).
"""

from __future__ import annotations

import logging

from swapserve.errors import SwapserveError
from swapserve.observability import tracing
from swapserve.observability.calls import CallRecord
from swapserve.observability.recorder import CallRecorder
from swapserve.transport.access import Access
from swapserve_client.dtypes import TensorError

log = logging.getLogger(__name__)

INTERNAL_MESSAGE = "internal server error (see the server log)"
"""What a client is told of an unexpected error (the traceback goes to the log only)."""

HTTP_STATUS = {
    "OK": 200,
    "INVALID_ARGUMENT": 400,
    "FAILED_PRECONDITION": 400,
    "OUT_OF_RANGE": 400,
    "UNAUTHENTICATED": 401,
    "PERMISSION_DENIED": 403,
    "NOT_FOUND": 404,
    "ALREADY_EXISTS": 409,
    "ABORTED": 409,
    "RESOURCE_EXHAUSTED": 429,
    "UNIMPLEMENTED": 501,
    "UNAVAILABLE": 503,
    "DEADLINE_EXCEEDED": 504,
}
"""gRPC code -> HTTP status, as TF Serving's REST server and grpc-gateway map them (else 500)."""


def http_status(code: str) -> int:
    """The HTTP status of a gRPC code name (500 for codes without one)."""
    return HTTP_STATUS.get(code, 500)


TFSERVING_PROTOCOLS = frozenset({"tfserving", "tfserving_rest"})
"""The surfaces whose clients may match on TF Serving's error texts."""


def failure(err: Exception, where: str, protocol: str = "") -> tuple[str, str]:
    """(gRPC code name, message) for an exception a call raised. Domain and tensor errors carry
    their own; anything else is logged with its traceback and answered INTERNAL, never with its
    text (it may hold internals). On TF Serving's surfaces a servable that is not there is
    answered in TF Serving's words first (``Servable not found for request: Latest(m)``),
    then ours."""
    if isinstance(err, SwapserveError):
        if err.servable and protocol in TFSERVING_PROTOCOLS:
            return err.status, f"Servable not found for request: {err.servable}. {err.message}"
        return err.status, err.message
    if isinstance(err, TensorError):
        return "INVALID_ARGUMENT", str(err)
    log.error("unexpected error in %s", where, exc_info=err)
    return "INTERNAL", INTERNAL_MESSAGE


class CallPath:
    """Opens and closes the records of one server's calls, and holds its access rule.

    Args:
        recorder: where finished calls go (metrics, statistics, logs).
        access: who may make which call.
    """

    def __init__(self, recorder: CallRecorder, access: Access) -> None:
        self.access = access
        self.wants_peer = recorder.wants_peer
        """The recorder logs peers: ask the transport for them (gRPC builds a string)."""
        self._observe = recorder.observe

    def close(self, record: CallRecord, code: str) -> None:
        """Finishes ``record`` with ``code`` (a gRPC code name, or an HTTP status as text) and
        hands it on; never raises."""
        record.finish(code)
        record.trace_id = tracing.annotate(record.model)
        self._observe(record)
