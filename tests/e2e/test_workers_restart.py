"""A ``--workers`` worker killed under load (issue 30, item 6), on a real process: before, the
combined ``swapserve_requests_total`` fell from 2,050 to 1,026 (a counter reset to Prometheus)
and the restarted worker took connections before its model was loaded (2% of requests got 503
"no version loaded yet" for ~9 s). Now dead workers' counts are kept and a restarted worker
joins the shared ports only once its models serve."""

from __future__ import annotations

import http.client
import itertools
import os
import re
import signal
import threading
import time
import urllib.request
from pathlib import Path

from helpers import HALF_PLUS_TWO, ServerProcess, copy_version, wait_for


def _requests_total(port: int) -> float:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("swapserve_requests_total{")
    )


def _worker_pids(log: str) -> dict[int, int]:
    return {int(w): int(p) for w, p in re.findall(r"worker (\d+) started \(pid (\d+)\)", log)}


def test_a_killed_worker_keeps_its_counts_and_rejoins_only_when_ready(tmp_path: Path) -> None:
    copy_version(HALF_PLUS_TWO, tmp_path / "m", 1)
    server = ServerProcess(
        "--model-name", "m", "--export-root", str(tmp_path / "m"), "--workers", "2",
        "--rest-port", "0", "--metrics-port", "0", "--poll-seconds", "600",
    )  # fmt: skip
    metrics = server.metrics_port
    rest = server.rest_port
    answers: list[tuple[float, int, bytes]] = []
    stop = threading.Event()

    def load() -> None:
        while not stop.is_set():
            conn = http.client.HTTPConnection("127.0.0.1", rest, timeout=30)  # a new one each
            try:
                conn.request("POST", "/v1/models/m:predict", body=b'{"instances": [1.0]}')
                response = conn.getresponse()
                answers.append((time.monotonic(), response.status, response.read()))
            except OSError as err:  # a connection the killed worker had accepted
                answers.append((time.monotonic(), 0, repr(err).encode()))
            finally:
                conn.close()

    try:
        wait_for(lambda: server.log.count("serving (loaded in") >= 2, timeout=120)
        threads = [threading.Thread(target=load, daemon=True) for _ in range(4)]
        for t in threads:
            t.start()
        wait_for(lambda: len(answers) > 200, timeout=60)
        totals = [_requests_total(metrics)]
        pid = _worker_pids(server.log)[0]
        os.kill(pid, signal.SIGKILL)
        killed = time.monotonic()
        wait_for(
            lambda: (
                _worker_pids(server.log)[0] != pid and server.log.count("worker 0 serving") >= 2
            ),
            timeout=120,
            what="the restarted worker",
        )
        end = time.monotonic() + 3  # the restarted worker takes its share
        while time.monotonic() < end:
            totals.append(_requests_total(metrics))
            time.sleep(0.2)
        stop.set()
        for t in threads:
            t.join(30)
    finally:
        stop.set()
        server.stop()
    assert all(b >= a for a, b in itertools.pairwise(totals)), totals
    after_kill = [(at, status, body) for at, status, body in answers if at > killed + 1.0]
    bad = [(status, body[:120]) for _, status, body in after_kill if status != 200]
    assert len(after_kill) > 100 and bad == [], bad[:5]
