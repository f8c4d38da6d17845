"""Who may make which call: the one access rule of every transport (gRPC and HTTP).

Admin calls are the methods in ``ADMIN_RPCS`` (the HTTP routes that do the same name the same
methods). With an admin token, an admin call needs ``authorization: Bearer <admin token>`` from
any peer. Without one, admin calls are accepted from loopback peers only (unless
``--allow-remote-admin``) and, when a data token is set, need that token: a server that asks for
a token to predict must not reload for anyone local. With a data token, every other call of the
served APIs needs ``authorization: Bearer <token>`` (the admin token works too). The ``Bearer``
scheme is case-insensitive; tokens are compared in constant time. Health checks and reflection
stay open so probes and tools work (the transports do not ask for them).
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Mapping

from swapserve.errors import PermissionDenied, Unauthenticated

ADMIN_RPCS: Mapping[str, tuple[str, ...]] = {
    "swapserve.v1.PredictionService": ("Reload",),
    "tensorflow.serving.ModelService": ("HandleReloadConfigRequest",),
    "inference.GRPCInferenceService": (
        "RepositoryModelLoad",
        "RepositoryModelUnload",
        "UpdateLogSettings",  # HTTP: POST /v2/logging
        "LogSettings",  # gRPC: one RPC reads and writes
    ),
}
"""Every admin call, by gRPC service; the only list of them."""

ADMIN_METHODS = frozenset(m for methods in ADMIN_RPCS.values() for m in methods)
"""The admin methods by name (unique across our APIs; HTTP routes use the same names)."""

LOCAL_SOCKET = "unix"
"""The peer host of a Unix-domain socket: the local machine."""


class Access:
    """The access rule of one server.

    Args:
        admin_token: the admin token (None: admin calls are limited to loopback peers).
        data_token: the data token (None: data calls need none).
        allow_remote_admin: accept admin calls from any peer without an admin token.
    """

    def __init__(
        self, admin_token: str | None, data_token: str | None, allow_remote_admin: bool = False
    ) -> None:
        self._admin = admin_token
        self._data = data_token
        self._remote_admin = allow_remote_admin or admin_token is not None
        self.checks_tokens = admin_token is not None or data_token is not None
        """Some call needs a token (else ``check_token`` never refuses)."""

    def check_token(self, what: str, presented: str | None, *, admin: bool) -> None:
        """Raises Unauthenticated (no token where one is needed) or PermissionDenied (a wrong
        one) for the call ``what`` with the bearer token ``presented`` (None: no header)."""
        accepted: list[str | None]
        if admin and self._admin is None:
            if self._data is None:
                return  # the loopback rule alone
            accepted, admin = [self._data], False
        elif admin:
            accepted = [self._admin]
        elif self._data is None:
            return
        else:
            accepted = [self._data, self._admin]
        kind = "admin " if admin else ""
        if presented is None:
            raise Unauthenticated(f"{what} needs an 'authorization: Bearer <{kind}token>' header")
        if not any(t is not None and _matches(presented, t) for t in accepted):
            raise PermissionDenied(f"invalid {kind}token for {what}")

    def check_peer(self, what: str, host: str) -> None:
        """Raises PermissionDenied unless the admin call ``what`` may come from ``host`` (an IP
        address as text, or ``LOCAL_SOCKET``)."""
        if self._remote_admin or is_loopback(host):
            return
        raise PermissionDenied(
            f"{what} is an admin RPC and is accepted only from loopback peers; {host} is not one "
            "(start the server with --allow-remote-admin to accept remote admin calls)"
        )

    def check(self, what: str, presented: str | None, host: str, *, admin: bool) -> None:
        """Both checks, as a transport that sees token and peer together makes them."""
        self.check_token(what, presented, admin=admin)
        if admin:
            self.check_peer(what, host)


def is_loopback(host: str) -> bool:
    """True for a loopback address (IPv4, IPv6, IPv4-mapped IPv6) or a Unix-domain socket."""
    if host == LOCAL_SOCKET:
        return True
    try:
        addr = ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    return addr.is_loopback


def bearer(value: str | None) -> str | None:
    """The token of an ``authorization`` value ``Bearer <token>`` (RFC 6750; scheme
    case-insensitive), or None."""
    if value is None:
        return None
    scheme, _, token = value.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def _matches(presented: str, token: str) -> bool:
    # A header may carry any byte (aiohttp keeps non-UTF-8 ones as surrogates): encode it
    # losslessly, so a stray byte is a wrong token (403), not an error (500).
    return hmac.compare_digest(presented.encode("utf-8", "surrogateescape"), token.encode())
