"""Safe rollout on a real ``swapserve`` process with load running through each event (issue 31):
gates refuse NaN, renamed-input and slow exports; force serves them anyway; a canary answers
its share and is promoted, or rolled back when it answers NaN on live inputs -- with 0 failed
requests and 0 NaN answers throughout."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from flawed import flawed_export

from helpers import ServerProcess, wait_for
from swapserve_client import Client, SwapserveError


class Load:
    """Threads predicting until stopped; counts answers by version, NaN answers and failures.
    ``inputs()`` picks each request's x (the test changes it through an event)."""

    def __init__(self, port: int, inputs: Callable[[], list[float]], threads: int = 4) -> None:
        self.port, self.inputs = port, inputs
        self.seen: Counter[int] = Counter()
        self.nan = 0
        self.failures: list[str] = []
        self._lock = threading.Lock()  # guards the counts above
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]

    def __enter__(self) -> Load:
        for t in self._threads:
            t.start()
        self.wait(50)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(30)

    @property
    def total(self) -> int:
        with self._lock:
            return sum(self.seen.values())

    def wait(self, answers: int) -> None:
        start = self.total
        wait_for(lambda: self.total >= start + answers, 60, f"{answers} answers")

    def snapshot(self) -> Counter[int]:
        with self._lock:
            return Counter(self.seen)

    def _run(self) -> None:
        with Client(f"127.0.0.1:{self.port}", timeout=30) as client:
            while not self._stop.is_set():
                x = np.array(self.inputs(), np.float32)
                try:
                    out = client.predict_full("m", {"x": x})
                except SwapserveError as err:
                    with self._lock:
                        self.failures.append(str(err))
                    continue
                with self._lock:
                    self.seen[out.version] += 1
                    if not np.isfinite(out.outputs["y"]).all():
                        self.nan += 1


@contextmanager
def server(root: Path, *flags: str) -> Iterator[ServerProcess]:
    flawed_export(root, 1)
    proc = ServerProcess(
        "--model-name", "m", "--export-root", str(root), "--poll-seconds", "0.2",
        "--rest-port", "0", "--metrics-port", "0", *flags,
    )  # fmt: skip
    try:
        if "--workers" in flags:
            wait_for(lambda: proc.log.count("serving (loaded in") >= 2, 120, "both workers")
        with Client(f"127.0.0.1:{proc.port}", timeout=30) as client:
            wait_for(lambda: client.model_status("m").serving_version == 1, 60, "version 1")
        yield proc
    finally:
        proc.stop()


def status(proc: ServerProcess) -> object:
    with Client(f"127.0.0.1:{proc.port}", timeout=30) as client:
        return client.model_status("m")


def version_state(proc: ServerProcess, version: int) -> tuple[str, str]:
    for v in status(proc).versions:  # type: ignore[attr-defined]
        if v.version == version:
            return v.state, v.error
    return "", ""


def http(proc: ServerProcess, path: str, body: bytes | None = None) -> tuple[int, str]:
    request = urllib.request.Request(f"http://127.0.0.1:{proc.rest_port}{path}", data=body)
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def metric(proc: ServerProcess, name: str, **labels: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{proc.metrics_port}/metrics") as answer:
        text = answer.read().decode()
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    assert want is not None
    return total


def wait_state(proc: ServerProcess, version: int, state: str, timeout: float = 60) -> str:
    try:
        return wait_for(
            lambda: ((s := version_state(proc, version))[0] == state and s[1]) or None,
            timeout,
            f"version {version} to be {state}",
        )
    except AssertionError as err:  # the server's own account, for a failure seen only in CI
        raise AssertionError(f"{err}; server log:\n{proc.log[-6000:]}") from None


def test_a_nan_export_is_refused_everywhere_and_force_serves_it(tmp_path: Path) -> None:
    root = tmp_path / "m"
    with server(root) as proc, Load(proc.port, lambda: [0.5, 1.5]) as load:
        flawed_export(root, 2, "nan")
        error = wait_state(proc, 2, "FAILED")
        load.wait(200)
        assert error.startswith("rejected by the finite gate: output 'y': "), error
        assert "values are NaN or Inf" in error
        rollout = status(proc).rollout  # type: ignore[attr-defined]
        assert (rollout.phase, rollout.gate, rollout.version) == ("REFUSED", "finite", 2)
        # FAILED on the TF Serving and V2 surfaces too.
        code, body = http(proc, "/v1/models/m/versions/2")
        assert code == 200 and '"state": "END"' not in body
        assert "rejected by the finite gate" in body
        assert http(proc, "/v2/models/m/versions/2/ready")[0] == 503
        code, body = http(proc, "/v2/repository/index", b"{}")
        rows = {(r["name"], r.get("version")): r for r in json.loads(body)}
        assert rows[("m", "2")]["state"] == "UNAVAILABLE"
        assert "rejected by the finite gate" in rows[("m", "2")]["reason"]
        assert metric(proc, "swapserve_gate_checks_total", gate="finite", outcome="refused") == 1
        assert proc.log.count("rejected by the finite gate") == 1
        # A Reload without force names the gate; with force it serves.
        with Client(f"127.0.0.1:{proc.port}", timeout=60) as client:
            with pytest.raises(SwapserveError, match="rejected by the finite gate") as refused:
                client.reload("m")
            assert refused.value.code.name == "FAILED_PRECONDITION"
            assert load.nan == 0
            assert client.reload("m", force=True).version == 2
        load.wait(100)
        assert status(proc).rollout.phase == "FORCED"  # type: ignore[attr-defined]
    assert load.failures == []
    assert load.seen[1] > 0 and load.nan == load.seen[2] > 0


def test_a_renamed_input_is_refused_with_no_failed_request(tmp_path: Path) -> None:
    root = tmp_path / "m"
    with server(root) as proc, Load(proc.port, lambda: [0.5]) as load:
        flawed_export(root, 2, "renamed")
        error = wait_state(proc, 2, "FAILED")
        load.wait(200)
        # The fixed export is evaluated again once its files change (a new directory here).
        flawed_export(root, 3)
        wait_for(lambda: status(proc).serving_version == 3, 60, "version 3")  # type: ignore[attr-defined]
        load.wait(100)
    assert error == (
        "rejected by the signature gate: signature 'serving_default': input 'x' is gone "
        "(the new version takes 'z')"
    )
    assert load.failures == []
    assert set(load.seen) == {1, 3}


def test_a_slow_export_is_refused_with_both_latencies_and_the_cli_forces_it(
    tmp_path: Path,
) -> None:
    root = tmp_path / "m"
    with server(root) as proc, Load(proc.port, lambda: [0.5]) as load:
        flawed_export(root, 2, "slow")
        error = wait_state(proc, 2, "FAILED", timeout=120)
        load.wait(100)
        assert error.startswith("rejected by the latency gate: p99 ")
        assert "ms against the serving version's" in error and "limit x3" in error
        assert status(proc).serving_version == 1  # type: ignore[attr-defined]
        # The HTTP admin equivalent: V2's repository load with parameters.force.
        code, body = http(proc, "/v2/repository/models/m/load", b'{"parameters": {"force": 1}}')
        assert code == 400 and "parameters.force must be true or false" in body
        cli = Path(sys.executable).parent / "swapserve-client"
        done = subprocess.run(
            [str(cli), "--target", f"127.0.0.1:{proc.port}", "reload", "m"],
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert done.returncode == 1 and "rejected by the latency gate" in done.stderr
        done = subprocess.run(
            [str(cli), "--target", f"127.0.0.1:{proc.port}", "reload", "m", "--force"],
            capture_output=True, text=True, timeout=120, check=True,
        )  # fmt: skip
        assert json.loads(done.stdout)["version"] == 2
        load.wait(20)
    assert load.failures == []


def test_the_v2_load_with_force_serves_a_refused_version(tmp_path: Path) -> None:
    root = tmp_path / "m"
    with server(root) as proc, Load(proc.port, lambda: [0.5]) as load:
        flawed_export(root, 2, "renamed")
        wait_state(proc, 2, "FAILED")
        code, body = http(proc, "/v2/repository/models/m/load", b"")
        assert code == 400 and "rejected by the signature gate" in body
        code, _ = http(proc, "/v2/repository/models/m/load", b'{"parameters": {"force": true}}')
        assert code == 200
        assert status(proc).serving_version == 2  # type: ignore[attr-defined]
    # Once forced, requests with the old input name fail: what the gate had prevented.
    assert any("INVALID_ARGUMENT" in f for f in load.failures)


def test_a_canary_answers_its_share_then_is_promoted(tmp_path: Path) -> None:
    root = tmp_path / "m"
    flags = ("--canary-percent", "20", "--canary-seconds", "6")
    with server(root, *flags) as proc, Load(proc.port, lambda: [0.5]) as load:
        flawed_export(root, 2)
        wait_for(lambda: status(proc).rollout.phase == "CANARY", 60, "the canary")  # type: ignore[attr-defined]
        before = load.snapshot()
        load.wait(2500)
        during = load.snapshot() - before
        rollout = status(proc).rollout  # type: ignore[attr-defined]
        assert rollout.phase == "CANARY", rollout.message
        share = during[2] / (during[1] + during[2])
        assert abs(share - 0.20) <= 0.05, during
        # A routing key keeps a caller on one side; a request naming a version is not diverted.
        x = {"x": np.array([0.5], np.float32)}
        sides = set()
        for key in ("alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi"):
            meta = (("swapserve-routing-key", key),)
            with Client(f"127.0.0.1:{proc.port}", timeout=30, metadata=meta) as keyed:
                versions = {keyed.predict_full("m", x).version for _ in range(20)}
            assert len(versions) == 1, (key, versions)
            sides |= versions
        with Client(f"127.0.0.1:{proc.port}", timeout=30) as client:
            pinned = {
                client.predict_full("m", {"x": np.array([0.5], np.float32)}, version=1).version
                for _ in range(50)
            }
            assert pinned == {1}
        wait_for(lambda: status(proc).rollout.phase == "PROMOTED", 60, "the promotion")  # type: ignore[attr-defined]
        wait_for(lambda: status(proc).serving_version == 2, 10, "version 2")  # type: ignore[attr-defined]
        after = load.snapshot()
        load.wait(300)
        assert set(load.snapshot() - after) == {2}
        assert metric(proc, "swapserve_rollouts_total", outcome="promoted") == 1
    assert load.failures == [] and load.nan == 0


def test_a_canary_nan_on_live_inputs_is_rolled_back_without_a_nan_answer(
    tmp_path: Path,
) -> None:
    root = tmp_path / "m"
    inputs = [[0.5]]
    flags = ("--canary-percent", "30", "--canary-seconds", "60")
    with server(root, *flags) as proc, Load(proc.port, lambda: inputs[0]) as load:
        # Traffic so far never exceeds 1: the gate sample cannot see the flaw, and zeros warm
        # the export up fine.
        flawed_export(root, 2, "nan-above-1")
        wait_for(lambda: status(proc).rollout.phase == "CANARY", 60, "the canary")  # type: ignore[attr-defined]
        inputs[0] = [0.5, 2.0]  # live traffic reaches the part of the input space it breaks on
        error = wait_state(proc, 2, "FAILED")
        rollout = status(proc).rollout  # type: ignore[attr-defined]
        load.wait(200)
        assert status(proc).serving_version == 1  # type: ignore[attr-defined]
        after = load.snapshot()
        load.wait(200)
        assert set(load.snapshot() - after) == {1}
        assert metric(proc, "swapserve_rollouts_total", outcome="rolled_back") == 1
    assert error.startswith("rolled back: ") and "held NaN or Inf" in error
    assert rollout.phase == "ROLLED_BACK"
    assert load.failures == [] and load.nan == 0


def test_workers_gate_once_share_the_canary_verdict_and_swap_one_at_a_time(
    tmp_path: Path,
) -> None:
    root = tmp_path / "m"
    flags = ("--workers", "2", "--canary-percent", "50", "--canary-seconds", "3")
    with server(root, *flags) as proc, Load(proc.port, lambda: [0.5], threads=6) as load:
        flawed_export(root, 2, "nan")
        wait_for(lambda: proc.log.count("rejected by the finite gate") >= 2, 60, "both workers")
        load.wait(200)
        flawed_export(root, 3)
        wait_for(lambda: proc.log.count("is a canary") >= 2, 60, "both canaries")
        wait_for(lambda: proc.log.count("after its canary") >= 2, 60, "both promotions")
        time.sleep(0.5)
        after = load.snapshot()
        load.wait(300)
        assert set(load.snapshot() - after) == {3}
    log = proc.log
    # The gates ran in one worker; the other applied its verdicts without loading version 2.
    assert log.count("version 2 rejected by the finite gate") == 2
    assert log.count("version 3 passed the gates [gated in ") == 1
    assert log.count("version 3 passed the gates [by another worker]") == 1
    assert log.count("loading version 2") == 1
    assert log.count("decided by a worker") == 1
    assert load.failures == [] and load.nan == 0
