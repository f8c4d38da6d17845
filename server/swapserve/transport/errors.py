"""The one place where domain errors become gRPC statuses."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any, TypeVar

import grpc

from swapserve import calls
from swapserve.calls import CallRecord
from swapserve.errors import DeadlineExceeded, SwapserveError
from swapserve.transport import tracing
from swapserve_client.dtypes import TensorError

log = logging.getLogger(__name__)

_F = TypeVar("_F", bound=Callable[..., Any])


def _model_of(request: Any) -> str:
    """The model a request names, whatever the protocol calls the field."""
    for field in ("model_name", "name"):
        value = getattr(request, field, None)
        if isinstance(value, str):
            return value
    spec = getattr(request, "model_spec", None)
    return spec.name if spec is not None else ""


def grpc_errors(method: _F) -> _F:
    """Wraps a servicer method: domain errors abort with their status and message; anything
    unexpected is logged with its traceback and the client gets a generic INTERNAL. Every call is
    recorded (``CallRecord``) and handed to the data plane's observer: metrics, statistics,
    access and request logs. This runs on every RPC: it asks for the peer only when an observer
    logs it, and binds the record without a generator context manager."""
    name = method.__name__

    @functools.wraps(method)
    def wrapper(self: Any, request: Any, context: grpc.ServicerContext) -> Any:
        dataplane = self._dataplane
        peer = context.peer() if dataplane.logs_peers else ""
        record = CallRecord(self.PROTOCOL, name, peer=peer, model=_model_of(request))
        code, message = grpc.StatusCode.OK, ""
        try:
            remaining = context.time_remaining() if hasattr(context, "time_remaining") else None
            if remaining is not None and remaining <= 0:
                raise DeadlineExceeded("the request's deadline passed before it could run")
            token = calls.bind(record)
            try:
                return method(self, request, context)
            finally:
                calls.unbind(token)
        except SwapserveError as err:
            code, message = grpc.StatusCode[err.status], err.message
        except TensorError as err:
            code, message = grpc.StatusCode.INVALID_ARGUMENT, str(err)
        except Exception:
            log.exception("unexpected error in %s", method.__qualname__)
            code, message = grpc.StatusCode.INTERNAL, "internal server error (see the server log)"
        finally:
            record.finish(code.name)
            record.trace_id = tracing.annotate(record.model)
            dataplane.observe(record)
        context.abort(code, message)

    return wrapper  # type: ignore[return-value]
