"""Bearer-token checks for the RPC API, as a server interceptor.

With an admin token, admin RPCs (Reload, HandleReloadConfigRequest, RepositoryModelLoad/Unload)
need ``authorization: Bearer <admin token>`` from any peer; without one they are limited to
loopback peers (``swapserve.transport.admin``) and, when a data token is set, need that token. With
a data token, every other RPC of the served APIs needs ``authorization: Bearer <token>`` (the
admin token works too). The ``Bearer`` scheme is case-insensitive. Health checks and
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
        accepted: list[str | None]
        if admin and self._admin is None:
            if self._data is None:
                return continuation(handler_call_details)  # loopback rule, in the servicer
            # Only a data token: admin calls need it too (and the loopback rule still applies)
            # -- a server that asks for a token to predict must not reload for anyone local.
            accepted, admin = [self._data], False
        elif admin:
            accepted = [self._admin]
        elif self._data is None:
            return continuation(handler_call_details)
        else:
            accepted = [self._data, self._admin]
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
    """The token of an ``authorization: Bearer <token>`` header; the scheme is
    case-insensitive (RFC 7235 section 2.1, RFC 6750)."""
    for key, value in metadata or ():
        if key == "authorization" and isinstance(value, str):
            scheme, _, token = value.partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
    return None
