"""The one place where domain errors become gRPC statuses."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any, TypeVar

import grpc

from swapserve.errors import SwapserveError
from swapserve_client.tensors import TensorError

log = logging.getLogger(__name__)

_F = TypeVar("_F", bound=Callable[..., Any])


def grpc_errors(method: _F) -> _F:
    """Wraps a servicer method: domain errors abort with their status and message; anything
    unexpected is logged with its traceback and the client gets a generic INTERNAL."""

    @functools.wraps(method)
    def wrapper(self: Any, request: Any, context: grpc.ServicerContext) -> Any:
        try:
            return method(self, request, context)
        except SwapserveError as err:
            context.abort(grpc.StatusCode[err.status], err.message)
        except TensorError as err:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(err))
        except Exception:
            log.exception("unexpected error in %s", method.__qualname__)
            context.abort(grpc.StatusCode.INTERNAL, "internal server error (see the server log)")

    return wrapper  # type: ignore[return-value]
