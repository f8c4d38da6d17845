"""Faulty config sources (issue 30, items 4 and 5) on a real ``swapserve`` process, with load
running through each fault: a config caught half-written, a hostile ``config.pbtxt`` in a
repository, a config file that cannot be read at start."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np

from helpers import (
    HALF_PLUS_THREE,
    HALF_PLUS_TWO,
    REPO,
    CallLoad,
    ServerProcess,
    copy_version,
    wait_for,
)
from swapserve_client import Client, SwapserveError

X = {"x": np.array([[2.0]], np.float32)}


def _yaml(*names: str, root: Path) -> str:
    return "models:\n" + "".join(f"  - {{name: {n}, export_root: {root / n}}}\n" for n in names)


def _serves(client: Client, model: str) -> bool:
    try:
        return client.model_status(model).serving_version == 1
    except SwapserveError:
        return False


def _metric(port: int, name: str) -> dict[str, float]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    return {
        line.split(" ")[0]: float(line.split(" ")[1])
        for line in text.splitlines()
        if line.startswith(name)
    }


def test_a_config_caught_half_written_never_drops_a_model(tmp_path: Path) -> None:
    """Before: a polled YAML rewritten in two writes 3 s apart (the first half valid YAML)
    removed model b and re-added it: 16 of 83 requests got 404/503. Now the half file never
    settles, so b serves throughout and c comes once the file is whole."""
    for name in ("a", "b", "c"):
        copy_version(HALF_PLUS_TWO if name != "c" else HALF_PLUS_THREE, tmp_path / name, 1)
    config = tmp_path / "models.yaml"
    config.write_text(_yaml("a", "b", root=tmp_path))
    server = ServerProcess(
        "--config", str(config), "--config-poll-seconds", "0.3", "--config-settle-seconds", "5"
    )
    try:
        with Client(f"127.0.0.1:{server.port}", timeout=30) as client:
            wait_for(lambda: all(client.model_status(m).serving_version == 1 for m in "ab"), 60)
            calls = [lambda m=m: client.predict(m, X) for m in "ab"]  # type: ignore[misc]
            with CallLoad(calls, threads=4) as load:
                load.wait_for_answers(20)
                with config.open("r+") as f:  # one file, written in two steps 3 s apart
                    f.truncate(0)
                    f.write(_yaml("a", root=tmp_path))
                    f.flush()
                    time.sleep(3)
                    f.write(_yaml("b", "c", root=tmp_path).removeprefix("models:\n"))
                wait_for(lambda: _serves(client, "c"), 30, "model c")
                load.wait_for_answers(20)
            assert load.errors == [], sorted(set(load.errors))[:5]
    finally:
        server.stop()
    assert "removed" not in server.log, server.log[-3000:]


def test_a_hostile_config_pbtxt_fails_only_its_model(tmp_path: Path) -> None:
    """Before: one non-UTF-8 byte in a comment of one model's config.pbtxt: exit 1 with a
    traceback at start (no model served); while polling, a traceback every poll, new good
    models never loaded, swapserve_config_ok stayed 1."""
    repo = tmp_path / "repo"
    for name in ("good", "bad"):
        copy_version(HALF_PLUS_TWO, repo / name, 1)
    (repo / "bad" / "config.pbtxt").write_bytes(b"# caf\xe9\nmax_batch_size: 0\n")
    server = ServerProcess(
        "--model-repository", str(repo), "--poll-seconds", "0.3", "--rest-port", "0",
        "--metrics-port", "0", "--config-settle-seconds", "0.5",
    )  # fmt: skip
    metrics_port = server.metrics_port
    try:
        with Client(f"127.0.0.1:{server.port}", timeout=30) as client:
            wait_for(lambda: client.model_status("good").serving_version == 1, 60)
            with CallLoad([lambda: client.predict("good", X)], threads=2) as load:
                load.wait_for_answers(20)
                index = urllib.request.urlopen(
                    urllib.request.Request(
                        f"http://127.0.0.1:{server.rest_port}/v2/repository/index", data=b"{}"
                    ),
                    timeout=10,
                )
                rows = {r["name"]: r for r in json.loads(index.read())}
                assert rows["bad"]["state"] == "UNAVAILABLE"
                assert "not UTF-8" in rows["bad"]["reason"], rows
                assert _metric(metrics_port, "swapserve_model_config_invalid") == {
                    'swapserve_model_config_invalid{model="bad"}': 1.0
                }
                assert _metric(metrics_port, "swapserve_config_ok") == {"swapserve_config_ok": 0}
                # A new good model still comes while the bad one stays bad.
                copy_version(HALF_PLUS_THREE, repo / "new", 1)
                wait_for(lambda: _serves(client, "new"), 30, "new")
                # Mended: served, and its series goes.
                (repo / "bad" / "config.pbtxt").write_text("max_batch_size: 0\n")
                wait_for(lambda: _serves(client, "bad"), 30, "bad")
                wait_for(lambda: not _metric(metrics_port, "swapserve_model_config_invalid{"))
                assert _metric(metrics_port, "swapserve_config_ok") == {"swapserve_config_ok": 1}
                load.wait_for_answers(20)
            assert load.errors == [], load.errors[:5]
    finally:
        server.stop()
    assert "Traceback" not in server.log
    assert server.log.count("is not UTF-8") == 1, server.log[-3000:]


def test_an_unreadable_config_at_start_is_one_line_and_exit_2(tmp_path: Path) -> None:
    config = tmp_path / "models.yaml"
    config.write_bytes(b"models:\n  - {name: m, export_root: /x}  # caf\xe9\n")
    done = subprocess.run(
        [str(Path(sys.executable).parent / "swapserve"), "--config", str(config), "--port", "0"],
        capture_output=True, text=True, timeout=120, cwd=REPO,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    assert f"config file {config} is not UTF-8: byte 0xe9" in done.stderr.splitlines()[-1]
