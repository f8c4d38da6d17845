"""Who may call admin RPCs when no admin token is set: loopback peers only, unless
``--allow-remote-admin``. With an admin token, ``auth.py`` checks the token instead."""

from __future__ import annotations

import ipaddress
from urllib.parse import unquote

from swapserve.errors import PermissionDenied


def is_loopback_peer(peer: str) -> bool:
    """True for gRPC peer strings of the local machine.

    ``context.peer()`` looks like ``ipv4:127.0.0.1:5000``, ``ipv6:[::1]:5000`` or ``unix:/path``.
    """
    kind, _, rest = unquote(peer).partition(":")  # grpc percent-encodes ipv6 brackets
    if kind == "unix":
        return True
    if kind == "ipv4":
        host = rest.rsplit(":", 1)[0]
    elif kind == "ipv6":
        host = rest.rsplit(":", 1)[0].strip("[]")
        host = host.split("%", 1)[0]
    else:
        return False
    try:
        addr = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    return addr.is_loopback


def check_admin(rpc: str, peer: str, allow_remote: bool) -> None:
    """Raises PermissionDenied unless ``peer`` may call the admin RPC ``rpc``."""
    if allow_remote or is_loopback_peer(peer):
        return
    raise PermissionDenied(
        f"{rpc} is an admin RPC and is accepted only from loopback peers; {peer} is not one "
        "(start the server with --allow-remote-admin to accept remote admin calls)"
    )
