"""gRPC's side of the one call path (``swapserve.transport.calls``): every servicer method is
wrapped by ``rpc``, which records the call, applies the admin peer rule, maps errors to a status
and aborts with it. A servicer method itself only decodes, calls the data plane or its admin,
and encodes (as TF Serving's ``prediction_service_impl.cc`` does)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import unquote

import grpc

from swapserve.errors import DeadlineExceeded
from swapserve.observability import calls
from swapserve.observability.calls import CallRecord
from swapserve.transport.access import ADMIN_METHODS, LOCAL_SOCKET
from swapserve.transport.calls import failure

_F = TypeVar("_F", bound=Callable[..., Any])


def peer_host(peer: str) -> str:
    """The host of a gRPC peer string: ``ipv4:127.0.0.1:5000`` -> ``127.0.0.1``,
    ``ipv6:[::1]:5000`` (grpc percent-encodes the brackets) -> ``::1``, ``unix:/path`` ->
    ``LOCAL_SOCKET``; anything else as it is (never a loopback address)."""
    kind, _, rest = unquote(peer).partition(":")
    if kind == "unix":
        return LOCAL_SOCKET
    if kind in ("ipv4", "ipv6"):
        return rest.rsplit(":", 1)[0].strip("[]")
    return peer


def _model_of(request: Any) -> str:
    """The model a request names, whatever the protocol calls the field."""
    for field in ("model_name", "name"):
        value = getattr(request, field, None)
        if isinstance(value, str):
            return value
    spec = getattr(request, "model_spec", None)
    return spec.name if spec is not None else ""


def rpc(method: _F) -> _F:
    """Wraps a servicer method (of a servicer with ``PROTOCOL`` and ``_calls``, a ``CallPath``)
    in the call path. This runs on every RPC: it asks for the peer only when it is logged or an
    admin call needs it, and binds the record without a generator context manager."""
    name = method.__name__
    admin = name in ADMIN_METHODS  # the token part is checked earlier, by the interceptor

    @functools.wraps(method)
    def wrapper(self: Any, request: Any, context: grpc.ServicerContext) -> Any:
        path = self._calls
        peer = context.peer() if admin or path.wants_peer else ""
        record = CallRecord(self.PROTOCOL, name, peer=peer, model=_model_of(request))
        record.metadata = context.invocation_metadata
        code, message = "OK", ""
        try:
            remaining = context.time_remaining() if hasattr(context, "time_remaining") else None
            if remaining is not None and remaining <= 0:
                raise DeadlineExceeded("the request's deadline passed before it could run")
            if admin:
                path.access.check_peer(name, peer_host(peer))
            token = calls.bind(record)
            try:
                return method(self, request, context)
            finally:
                calls.unbind(token)
        except Exception as err:
            code, message = failure(err, method.__qualname__, self.PROTOCOL)
        finally:
            path.close(record, code)
        context.abort(grpc.StatusCode[code], message)

    return wrapper  # type: ignore[return-value]
