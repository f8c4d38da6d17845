"""The HTTP port under hostile clients (issue 30, items 1, 2, 9, 10), on a real ``swapserve``
process with real sockets and load running through each attack: idle and slow connections
under a 1,024-descriptor limit, stalled bodies, gzip bombs, bodies held at once, malformed
requests and the log they leave."""

from __future__ import annotations

import gzip
import http.client
import json
import resource
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from helpers import HALF_PLUS_TWO, CallLoad, ServerProcess, copy_version, wait_for
from swapserve_client import Client

FD_LIMIT = 1024
TOKEN = "tok-abcdefghijklmnop"
PREDICT = b'{"instances": [1.0, 2.0]}'
ONE_INPUT = b'[{"name": "x", "datatype": "FP32", "shape": [1], "data": [1]}]'


def _limit_fds() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (FD_LIMIT, FD_LIMIT))


def _post(port: int, path: str, body: bytes, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:  # fmt: skip
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("POST", path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


def _raw(port: int, data: bytes, timeout: float = 10) -> bytes:
    """Sends ``data`` on a new connection; everything the server answers until it closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
        return received


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("models")
    copy_version(HALF_PLUS_TWO, root / "m", 1)
    proc = ServerProcess(
        "--model-name", "m", "--export-root", str(root / "m"), "--rest-port", "0",
        "--http-header-timeout-seconds", "2", "--http-idle-timeout-seconds", "3",
        "--http-body-timeout-seconds", "2", "--max-http-body-bytes", str(1 << 20),
        "--http-body-memory-bytes", str(20 << 20),
        preexec_fn=_limit_fds,
    )  # fmt: skip
    try:
        with Client(f"127.0.0.1:{proc.port}", timeout=30) as client:
            wait_for(lambda: client.model_status("m").serving_version == 1, timeout=60)
        yield proc
    finally:
        proc.stop()


def _load(server: ServerProcess) -> tuple[CallLoad, Client]:
    client = Client(f"127.0.0.1:{server.port}", timeout=30)
    x = {"x": np.array([[1.0]], np.float32)}
    rest = server.rest_port

    def http_predict() -> None:
        status, _, body = _post(rest, "/v1/models/m:predict", PREDICT)
        assert status == 200, (status, body)

    return CallLoad([lambda: client.predict("m", x), http_predict], threads=4), client


def test_idle_and_slow_connections_past_the_fd_limit_leave_both_ports_answering(
    server: ServerProcess,
) -> None:
    """Before: ~1,000 idle sockets on the REST port filled a 1,024-entry fd table; REST and
    gRPC stopped answering until they closed (aiohttp's 3,630 s keep-alive). Now the HTTP cap
    evicts the longest-idle connection, slow heads get 408 after the header timeout, idle ones
    are closed after the idle timeout -- and both ports answer throughout."""
    rest = server.rest_port
    peak = [0]
    sampling = threading.Event()

    def sample() -> None:
        while not sampling.is_set():
            peak[0] = max(peak[0], server.fds())
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    load, client = _load(server)
    idle: list[socket.socket] = []
    slow: list[socket.socket] = []
    try:
        sampler.start()
        with load:
            load.wait_for_answers(20)
            for _ in range(1300):  # more than the whole fd table can hold, with the slow ones
                idle.append(socket.create_connection(("127.0.0.1", rest)))
            for _ in range(100):
                sock = socket.create_connection(("127.0.0.1", rest))
                sock.sendall(b"POST /v1/models/m:predict HTTP/1.1\r\nHost: x\r\n")  # never ends
                slow.append(sock)
            started = time.monotonic()
            load.wait_for_answers(100)  # both ports answer with every socket open
            # Slow heads: 408 within the header timeout; idle ones: closed within theirs.
            for sock in slow:
                sock.settimeout(10)
                answer = sock.recv(4096)
                assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
            for sock in idle:
                sock.settimeout(10)
                try:
                    answer = sock.recv(4096)
                except ConnectionResetError:
                    answer = b""
                assert answer == b"" or answer.startswith(b"HTTP/1.1 503"), answer[:200]
            closed_after = time.monotonic() - started
            load.wait_for_answers(50)
        sampling.set()
        sampler.join()
        assert peak[0] < FD_LIMIT, peak
        assert closed_after < 3 + 5, closed_after  # the idle timeout, plus the flood's own time
        wait_for(lambda: server.fds() < 100, timeout=10, what="every idle socket closed")
        # The load's HTTP connections may be the evicted idle ones between two of their
        # requests (a client sees its keep-alive connection closed): gRPC never failed.
        assert [e for e in load.errors if "RemoteDisconnected" not in e and "reset" not in e.lower()] == [], load.errors[:5]  # fmt: skip
        assert client.model_status("m").serving_version == 1
    finally:
        sampling.set()
        for sock in idle + slow:
            sock.close()
        client.close()


def test_a_stalled_body_is_answered_408_and_closed(server: ServerProcess) -> None:
    """Before: a Content-Length larger than what is sent held the connection forever."""
    started = time.monotonic()
    answer = _raw(
        server.rest_port,
        b'POST /v1/models/m:predict HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{"inst',
    )
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert b"--http-body-timeout-seconds" in answer
    assert time.monotonic() - started < 10


def test_compressed_bodies_count_after_decompression(server: ServerProcess) -> None:
    """Before: 100 KB of gzip on the wire inflated to 256 MB (+2.4 GB RSS) and a body marked
    gzip that was not gzip got 500."""
    rest = server.rest_port
    load, client = _load(server)
    with load:
        load.wait_for_answers(20)
        before = server.rss()
        bomb = gzip.compress(b'{"instances": [' + b"1.0, " * 20_000_000 + b"1.0]}", 9)
        assert len(bomb) < 200_000
        for _ in range(5):
            status, _, body = _post(
                rest, "/v1/models/m:predict", bomb, {"Content-Encoding": "gzip"}
            )
            assert status == 413 and b"after decompression" in body, body
        assert server.rss() - before < 100 << 20, (before, server.rss())
        small = gzip.compress(PREDICT)
        status, _, body = _post(rest, "/v1/models/m:predict", small, {"Content-Encoding": "gzip"})
        assert (status, json.loads(body)) == (200, {"predictions": [2.5, 3.0]})
        status, _, body = _post(
            rest, "/v1/models/m:predict", b"no gzip", {"Content-Encoding": "gzip"}
        )
        assert (
            status == 400 and json.loads(body)["error"] == "the request body is not valid gzip data"
        )
        status, _, body = _post(rest, "/v1/models/m:predict", PREDICT, {"Content-Encoding": "br"})
        assert status == 415 and "not supported" in json.loads(body)["error"]
        load.wait_for_answers(20)
    client.close()
    assert load.errors == [], load.errors[:5]


def test_bodies_held_at_once_are_bounded_503_with_retry_after(server: ServerProcess) -> None:
    """The body memory budget (20 MiB here): a JSON body of 700 KB costs 11 MB while it is
    answered, so a second one sent while the first is still arriving waits its turn: 503 with
    Retry-After, not an unbounded pile of bodies."""
    rest = server.rest_port
    body = b'{"instances": [' + b"1.0, " * 140_000 + b"1.0]}"
    head = (
        f"POST /v1/models/m:predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", rest), timeout=10) as first:
        first.sendall(head + body[:10])  # holds its share of the budget while it arrives
        time.sleep(0.3)
        status, headers, answer = _post(rest, "/v1/models/m:predict", body)
        assert status == 503 and headers.get("Retry-After") == "1", answer
        assert "--http-body-memory-bytes" in json.loads(answer)["error"]
        first.sendall(body[10:])
        assert first.recv(4096).startswith(b"HTTP/1.1 200")
    status, _, _ = _post(rest, "/v1/models/m:predict", body)  # the budget was given back
    assert status == 200


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/models/m:predict", b'{"instances": [' + b"1" * 5000 + b"]}"),
        ("/v2/models/m/infer", b'{"inputs": [' + b"1" * 5000 + b"]}"),
        ("/v2/repository/index", b'{"ready": ' + b"1" * 5000 + b"}"),
        ("/v2/repository/index", b"[" * 100_000 + b"]" * 100_000),
        (
            "/v2/models/m/infer",
            b'{"id": {"a": 1}, "inputs": ' + ONE_INPUT + b"}",
        ),
        (
            "/v2/models/m/infer",
            b'{"parameters": {"binary_data_output": 1.5}, "inputs": ' + ONE_INPUT + b"}",
        ),
    ],
    ids=[
        "long-int-predict",
        "long-int-infer",
        "long-int-index",
        "deep-index",
        "object-id",
        "non-bool-flag",
    ],
)
def test_hostile_json_is_400_not_500(server: ServerProcess, path: str, body: bytes) -> None:
    status, _, answer = _post(server.rest_port, path, body)
    assert status == 400, answer[:300]
    assert "error" in json.loads(answer)


def test_non_ascii_digits_in_the_binary_header_length_are_400(server: ServerProcess) -> None:
    answer = _raw(
        server.rest_port,
        "POST /v2/models/m/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: close\r\n"
        "Inference-Header-Content-Length: \u0661\r\n\r\n{}".encode(),
    )
    assert answer.startswith(b"HTTP/1.1 400") and b"is not a number" in answer, answer[:300]


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GET /" + b"a" * 10_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
        b"POST /v1/models/m:predict HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
        b"GARBAGE Authorization: Bearer " + TOKEN.encode() + b"\r\n\r\n",
    ],
    ids=["long-url", "bad-content-length", "garbage"],
)
def test_aiohttps_own_refusals_are_json_and_logged_without_headers(
    server: ServerProcess, request_bytes: bytes
) -> None:
    answer = _raw(server.rest_port, request_bytes)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.split(b" ")[1] == b"400", head
    assert b"Content-Type: application/json" in head
    assert json.loads(body)["error"].startswith("malformed HTTP request")
    assert TOKEN not in server.log and "Traceback" not in server.log


def test_malformed_requests_log_one_line_per_interval(server: ServerProcess) -> None:
    """Before: a ~580-byte ERROR traceback per malformed request, unthrottled, quoting the raw
    header line (an admin token appeared in the log)."""
    before = server.log.count("malformed HTTP request")
    for _ in range(200):
        _raw(server.rest_port, b"GARBAGE Authorization: Bearer " + TOKEN.encode() + b"\r\n\r\n")
    assert server.log.count("malformed HTTP request") - before <= 1
    assert TOKEN not in server.log and "Traceback" not in server.log


def test_a_non_utf8_authorization_is_403(tmp_path: Path) -> None:
    """Before: 500 (the token comparison raised on the undecodable byte)."""
    copy_version(HALF_PLUS_TWO, tmp_path / "m", 1)
    token = tmp_path / "token"
    token.write_text(TOKEN)
    proc = ServerProcess(
        "--model-name", "m", "--export-root", str(tmp_path / "m"), "--rest-port", "0",
        "--token-file", str(token),
    )  # fmt: skip
    try:
        answer = _raw(
            proc.rest_port,
            b"GET /v1/models/m HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
            b"Authorization: Bearer \xff\xfe" + TOKEN.encode()[2:] + b"\r\n\r\n",
        )
        assert answer.startswith(b"HTTP/1.1 403"), answer[:300]
        assert b"invalid token" in answer
    finally:
        proc.stop()
