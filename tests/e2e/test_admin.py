"""Reload is an admin RPC: loopback peers only unless --allow-remote-admin."""

from __future__ import annotations

from pathlib import Path
from typing import NoReturn

import grpc
import pytest

from helpers import servicer
from swapserve.config.model_settings import ModelSettings, SessionSettings
from swapserve.errors import PermissionDenied
from swapserve.model.manager import ModelManager
from swapserve.transport.access import Access, is_loopback
from swapserve.transport.grpc.calls import peer_host
from swapserve_client._proto.swapserve.v1 import prediction_pb2 as pb


@pytest.mark.parametrize(
    ("peer", "loopback"),
    [
        ("ipv4:127.0.0.1:5000", True),
        ("ipv4:127.8.9.10:5000", True),
        ("ipv6:[::1]:5000", True),
        ("ipv6:%5B::1%5D:45890", True),  # as grpc reports it
        ("ipv6:[::ffff:127.0.0.1]:5000", True),
        ("unix:/tmp/sock", True),
        ("ipv4:10.0.0.5:5000", False),
        ("ipv4:192.168.1.2:5000", False),
        ("ipv6:[2001:db8::1]:5000", False),
        ("ipv6:[::ffff:10.0.0.1]:5000", False),
        ("something-else", False),
        ("ipv4:not-an-ip:1", False),
    ],
)
def test_is_loopback_peer(peer: str, loopback: bool) -> None:
    assert is_loopback(peer_host(peer)) is loopback


def test_check_admin() -> None:
    Access(None, None).check_peer("Reload", "127.0.0.1")
    Access(None, None, allow_remote_admin=True).check_peer("Reload", "10.0.0.5")
    Access("admin-token", None).check_peer("Reload", "10.0.0.5")  # the token is the gate
    with pytest.raises(PermissionDenied) as exc:
        Access(None, None).check_peer("Reload", "10.0.0.5")
    assert exc.value.message == (
        "Reload is an admin RPC and is accepted only from loopback peers; 10.0.0.5 is not "
        "one (start the server with --allow-remote-admin to accept remote admin calls)"
    )


class Aborted(Exception):
    pass


class FakeContext:
    """What the servicer uses of grpc.ServicerContext, for a remote peer we cannot create."""

    def __init__(self, peer: str) -> None:
        self._peer = peer
        self.code: grpc.StatusCode | None = None
        self.details = ""

    def peer(self) -> str:
        return self._peer

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return ()

    def abort(self, code: grpc.StatusCode, details: str) -> NoReturn:
        self.code, self.details = code, details
        raise Aborted


@pytest.mark.parametrize("allow_remote", [False, True])
def test_reload_from_remote_peer(tmp_path: Path, allow_remote: bool) -> None:
    manager = ModelManager(ModelSettings("m", tmp_path), SessionSettings())
    context = FakeContext("ipv4:203.0.113.7:4444")
    with pytest.raises(Aborted):
        servicer(manager, Access(None, None, allow_remote)).Reload(
            pb.ReloadRequest(model_name="m"), context
        )  # type: ignore[arg-type]
    if allow_remote:
        # Past the admin check: the empty export root is the problem now.
        assert context.code == grpc.StatusCode.UNAVAILABLE
        assert "has no complete version in export root" in context.details
    else:
        assert context.code == grpc.StatusCode.PERMISSION_DENIED
        assert "--allow-remote-admin" in context.details
