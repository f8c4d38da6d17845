"""Where the client connects: one server, a DNS name with several records, or a list of replicas.

One channel balances over every replica (gRPC's ``round_robin``) and retries ``UNAVAILABLE``
with backoff, both through the standard gRPC service config; the fleet commands
(``status --targets``, ``reload --targets``) instead talk to each replica on its own.
"""

from __future__ import annotations

import ipaddress
import json
import socket
from collections.abc import Sequence

SERVICE = "swapserve.v1.PredictionService"


def split(target: str | Sequence[str]) -> list[str]:
    """``"a:1,b:2"`` or ``["a:1", "b:2"]`` as a list of non-empty targets.

    Raises:
        ValueError: no target at all.
    """
    parts = target.split(",") if isinstance(target, str) else list(target)
    out = [p.strip() for p in parts if p.strip()]
    if not out:
        raise ValueError("no target given")
    return out


def service_config(retries: int) -> str:
    """The gRPC service config: round-robin over every address the target resolves to, and up
    to ``retries`` retries of UNAVAILABLE (a replica down or not serving yet) with backoff."""
    config: dict[str, object] = {"loadBalancingConfig": [{"round_robin": {}}]}
    if retries > 0:
        config["methodConfig"] = [
            {
                "name": [{"service": SERVICE}],
                "retryPolicy": {
                    "maxAttempts": min(retries + 1, 5),  # gRPC caps attempts at 5
                    "initialBackoff": "0.1s",
                    "maxBackoff": "1s",
                    "backoffMultiplier": 2,
                    "retryableStatusCodes": ["UNAVAILABLE"],
                },
            }
        ]
    return json.dumps(config)


def channel_target(target: str | Sequence[str]) -> str:
    """The target string of one channel over every replica.

    A single target is used as it is (a ``dns:///`` name with several records is balanced by
    gRPC itself). Several ``host:port`` targets are resolved now into gRPC's ``ipv4:`` or
    ``ipv6:`` address-list form.

    Raises:
        ValueError: an unresolvable or malformed entry, or a mix of IPv4 and IPv6 addresses.
    """
    targets = split(target)
    if len(targets) == 1:
        return targets[0]
    addresses = [a for t in targets for a in resolve(t)]
    v6 = [a.startswith("[") for a in addresses]
    if all(v6):
        return "ipv6:" + ",".join(addresses)
    if not any(v6):
        return "ipv4:" + ",".join(addresses)
    raise ValueError(f"targets {targets} mix IPv4 and IPv6 addresses; use one family")


def resolve(target: str) -> list[str]:
    """Every ``address:port`` a ``host:port`` (or ``dns:///host:port``) target stands for, so
    each replica behind a DNS name can be asked on its own.

    Raises:
        ValueError: a malformed target or a name that does not resolve.
    """
    name = target.removeprefix("dns:///").removeprefix("dns:")
    host, sep, port = name.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise ValueError(f"target {target!r}: expected host:port")
    host = host.strip("[]")
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        ip = None
    if ip is not None:
        return [f"[{ip}]:{port}" if ip.version == 6 else f"{ip}:{port}"]
    try:
        infos = socket.getaddrinfo(host, int(port), type=socket.SOCK_STREAM)
    except socket.gaierror as err:
        raise ValueError(f"target {target!r}: cannot resolve {host!r}: {err.strerror}") from None
    out: list[str] = []
    for family, _, _, _, sockaddr in infos:
        address = (
            f"[{sockaddr[0]}]:{port}" if family == socket.AF_INET6 else f"{sockaddr[0]}:{port}"
        )
        if address not in out:
            out.append(address)
    return out
