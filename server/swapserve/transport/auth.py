"""Bearer-token checks for the RPC API, as a server interceptor.

With an admin token, admin RPCs (Reload, HandleReloadConfigRequest, RepositoryModelLoad/Unload)
need ``authorization: Bearer <admin token>`` from any peer; without one they are limited to
loopback peers (``swapserve.transport.admin``). With a data token, every other RPC of the served
APIs needs ``authorization: Bearer <token>`` (the admin token works too). Health checks and
reflection stay open so probes and tools work. Tokens are compared in constant time.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from typing import Any

import grpc

ADMIN_METHODS = frozenset(
    {
        "/swapserve.v1.PredictionService/Reload",
        "/tensorflow.serving.ModelService/HandleReloadConfigRequest",
        "/inference.GRPCInferenceService/RepositoryModelLoad",
        "/inference.GRPCInferenceService/RepositoryModelUnload",
    }
)
_OPEN_PREFIXES = ("/grpc.health.v1.Health/", "/grpc.reflection.")


def _abort(code: grpc.StatusCode, details: str) -> grpc.RpcMethodHandler[Any, Any]:
    def deny(request: Any, context: grpc.ServicerContext) -> Any:
        context.abort(code, details)

    return grpc.unary_unary_rpc_method_handler(deny)


def _matches(presented: str, token: str) -> bool:
    return hmac.compare_digest(presented.encode(), token.encode())


class TokenInterceptor(grpc.ServerInterceptor):  # type: ignore[type-arg]
    """Checks ``authorization`` headers before any servicer runs."""

    def __init__(self, admin_token: str | None, token: str | None) -> None:
        self._admin = admin_token
        self._data = token

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler[Any, Any] | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        method = handler_call_details.method
        if method.startswith(_OPEN_PREFIXES):
            return continuation(handler_call_details)
        admin = method in ADMIN_METHODS
        accepted = [self._admin] if admin else [self._data, self._admin]
        if admin and self._admin is None:
            return continuation(handler_call_details)  # loopback rule, in the servicer
        if not admin and self._data is None:
            return continuation(handler_call_details)
        presented = _bearer(handler_call_details.invocation_metadata)
        kind = "admin " if admin else ""
        if presented is None:
            return _abort(
                grpc.StatusCode.UNAUTHENTICATED,
                f"{method} needs an 'authorization: Bearer <{kind}token>' header",
            )
        if not any(t is not None and _matches(presented, t) for t in accepted):
            return _abort(grpc.StatusCode.PERMISSION_DENIED, f"invalid {kind}token for {method}")
        return continuation(handler_call_details)


def _bearer(metadata: Any) -> str | None:
    for key, value in metadata or ():
        if key == "authorization" and isinstance(value, str) and value.startswith("Bearer "):
            return value[len("Bearer ") :]
    return None
