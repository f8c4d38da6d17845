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
        refusal = token_refusal(
            method,
            _bearer(handler_call_details.invocation_metadata),
            admin=method in ADMIN_METHODS,
            admin_token=self._admin,
            data_token=self._data,
        )
        if refusal is not None:
            return _abort(*refusal)
        return continuation(handler_call_details)


def token_refusal(
    what: str,
    presented: str | None,
    *,
    admin: bool,
    admin_token: str | None,
    data_token: str | None,
) -> tuple[grpc.StatusCode, str] | None:
    """Why a call with token ``presented`` (None: no header) may not run, or None if it may.
    The one rule for every transport (gRPC here, HTTP in ``rest.py``)."""
    accepted: list[str | None]
    if admin and admin_token is None:
        if data_token is None:
            return None  # the loopback rule applies, in the servicer
        # Only a data token: admin calls need it too (and the loopback rule still applies)
        # -- a server that asks for a token to predict must not reload for anyone local.
        accepted, admin = [data_token], False
    elif admin:
        accepted = [admin_token]
    elif data_token is None:
        return None
    else:
        accepted = [data_token, admin_token]
    kind = "admin " if admin else ""
    if presented is None:
        return (
            grpc.StatusCode.UNAUTHENTICATED,
            f"{what} needs an 'authorization: Bearer <{kind}token>' header",
        )
    if not any(t is not None and _matches(presented, t) for t in accepted):
        return grpc.StatusCode.PERMISSION_DENIED, f"invalid {kind}token for {what}"
    return None


def bearer(value: str | None) -> str | None:
    """The token of an ``authorization`` value ``Bearer <token>`` (scheme case-insensitive)."""
    if value is None:
        return None
    scheme, _, token = value.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def _bearer(metadata: Any) -> str | None:
    """The token of the call's ``authorization`` header (RFC 7235 section 2.1, RFC 6750)."""
    for key, value in metadata or ():
        if key == "authorization" and isinstance(value, str) and (token := bearer(value)):
            return token
    return None
