"""gRPC server interceptors: the token part of the access rule (``swapserve.transport.access``),
checked from the call's metadata before its request is even parsed."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc

from swapserve.errors import SwapserveError
from swapserve.transport.access import ADMIN_RPCS, Access, bearer

ADMIN_PATHS = frozenset(f"/{s}/{m}" for s, methods in ADMIN_RPCS.items() for m in methods)
"""The admin RPCs as gRPC method paths."""

_OPEN_PREFIXES = ("/grpc.health.v1.Health/", "/grpc.reflection.")


def _abort(code: grpc.StatusCode, details: str) -> grpc.RpcMethodHandler[Any, Any]:
    def deny(request: Any, context: grpc.ServicerContext) -> Any:
        context.abort(code, details)

    return grpc.unary_unary_rpc_method_handler(deny)


class TokenInterceptor(grpc.ServerInterceptor):  # type: ignore[type-arg]
    """Checks ``authorization`` headers before any servicer runs (health and reflection stay
    open)."""

    def __init__(self, access: Access) -> None:
        self._access = access

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler[Any, Any] | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        method = handler_call_details.method
        if method.startswith(_OPEN_PREFIXES):
            return continuation(handler_call_details)
        try:
            self._access.check_token(
                method,
                _bearer(handler_call_details.invocation_metadata),
                admin=method in ADMIN_PATHS,
            )
        except SwapserveError as err:
            return _abort(grpc.StatusCode[err.status], err.message)
        return continuation(handler_call_details)


def _bearer(metadata: Any) -> str | None:
    """The token of the call's ``authorization`` header (RFC 7235 section 2.1, RFC 6750)."""
    for key, value in metadata or ():
        if key == "authorization" and isinstance(value, str) and (token := bearer(value)):
            return token
    return None
