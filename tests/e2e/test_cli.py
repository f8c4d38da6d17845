"""The two command-line programs, run as processes and in-process."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import (
    HALF_PLUS_TWO,
    ServerProcess,
    copy_version,
    estimator_version,
    serving,
    wait_for,
)
from swapserve_client import cli as client_cli

BIN = Path(sys.executable).parent


def run_client(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, object, str]:
    code = client_cli.run(list(argv))
    out, err = capsys.readouterr()
    return code, json.loads(out) if out.strip() else None, err


def test_client_cli_commands(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    estimator_version(tmp_path, 1795300968, weight=1.0)
    with serving(tmp_path, name="seed", poll_seconds=600) as server:
        target = f"--target=127.0.0.1:{server.port}"
        code, out, _ = run_client(capsys, target, "predict", "seed", "--input", "number=[[100.0]]")
        assert code == 0
        assert out == {
            "model": "seed",
            "version": 1795300968,
            "signature": "serving_default",
            "outputs": {"output": [[200.0]]},
        }
        code, out, _ = run_client(capsys, target, "metadata", "seed")
        assert code == 0
        assert out["signatures"]["serving_default"]["inputs"] == {  # type: ignore[index]
            "number": {"dtype": "DT_FLOAT", "shape": [-1, 1]}
        }
        estimator_version(tmp_path, 1795300999, weight=1.5)
        code, out, _ = run_client(capsys, target, "reload", "seed")
        assert code == 0
        assert out["previous_version"] == 1795300968  # type: ignore[index]
        assert out["version"] == 1795300999  # type: ignore[index]
        code, out, _ = run_client(capsys, target, "status", "seed")
        assert code == 0
        assert (out["serving_version"], out["pinned_version"]) == (1795300999, 0)  # type: ignore[index]
        # Reload answers once the new version serves; the old one is released just after.
        released = [(1795300999, "AVAILABLE", True), (1795300968, "END", False)]

        def states() -> list[tuple[object, object, object]]:
            status = run_client(capsys, target, "status", "seed")[1]
            return [(v["version"], v["state"], v["serving"]) for v in status["versions"]]  # type: ignore[index]

        wait_for(lambda: states() == released, 30, "version 1795300968 released")
        code, out, _ = run_client(capsys, target, "predict", "seed", "--input=number=[[100.0]]")
        assert out["outputs"] == {"output": [[300.0]]}  # type: ignore[index]


def test_client_cli_status_watch(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    estimator_version(tmp_path, 1, weight=1.0)
    estimator_version(tmp_path, 2, weight=2.0)
    labels = {"stable": 2}
    with serving(tmp_path, name="seed", poll_seconds=600, labels=labels) as server:
        target = f"--target=127.0.0.1:{server.port}"
        assert client_cli.run([target, "reload", "seed", "--version", "1"]) == 0
        capsys.readouterr()
        code = client_cli.run([target, "status", "seed", "--watch", "0.05", "--count", "2"])
        out = capsys.readouterr().out
    assert code == 0
    frames = [f for f in out.split("\n\n") if f.strip()]
    assert len(frames) == 2
    lines = frames[0].splitlines()
    assert lines[0] == "model seed: serving 1, pinned to 1"
    header = ["VERSION", "STATE", "SERVING", "REQ/S", "ERRORS", "P99", "ms", "LOAD", "s", "SINCE",
              "LABELS", "ERROR"]  # fmt: skip
    assert lines[1].split() == header
    # Pinned to 1; 2 stays loaded because a label names it.
    assert lines[2].split()[:2] == ["2", "AVAILABLE"]
    assert lines[2].split()[-1] == "stable"
    assert lines[3].split()[:3] == ["1", "AVAILABLE", "*"]
    assert lines[3].split()[-1] == "-"


def test_client_cli_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    copy_version(HALF_PLUS_TWO, tmp_path, 1)
    with serving(tmp_path, poll_seconds=600) as server:
        target = f"--target=127.0.0.1:{server.port}"
        code, _, err = run_client(capsys, target, "predict", "m", "--input", "x=[[1, 2]]")
        assert code == 1
        assert err.strip() == (
            "INVALID_ARGUMENT: input 'x' of signature 'serving_default' has shape [1, 2]: "
            "dimension 1 is 2 but 1 is expected (shape [-1, 1])"
        )
        code, _, err = run_client(capsys, target, "predict", "nope", "--input", "x=[[1]]")
        assert (code, err.split(":")[0]) == (1, "NOT_FOUND")
        code, _, err = run_client(capsys, target, "predict", "m", "--input", "x=[[1")
        assert code == 2
        assert "--input x: value is not JSON" in err
        code, _, err = run_client(capsys, target, "predict", "m", "--input", "[[1]]")
        assert code == 2
        assert "expected NAME=JSON" in err
        code, _, err = run_client(capsys, target, "reload", "m", "--version", "42")
        assert (code, err.split(":")[0]) == (1, "NOT_FOUND")


def test_client_cli_unreachable_server(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_client(capsys, "--target=127.0.0.1:1", "--timeout=2", "status", "m")
    assert code == 1
    assert err.startswith(("UNAVAILABLE:", "DEADLINE_EXCEEDED:"))


def test_server_cli_rejects_bad_flags(tmp_path: Path) -> None:
    a_file = tmp_path / "file"
    a_file.write_text("x")
    config = tmp_path / "ok.yaml"
    config.write_text(f"models:\n  - name: m\n    export_root: {tmp_path}\n")
    bad_config = tmp_path / "bad.yaml"
    bad_config.write_text("models:\n  - name: m\n    export_rot: x\n")
    cases = [
        (
            ["--export-root", str(tmp_path)],
            "pass --config FILE, --model-repository DIR, or --model-name and --export-root",
        ),
        (
            ["--model-name", "m", "--export-root", str(tmp_path), "--poll-seconds", "0"],
            "poll seconds must be > 0, got 0.0",
        ),
        (
            ["--model-name", "m", "--export-root", str(a_file)],
            f"export root {a_file} is not a directory",
        ),
        (["--model-name", "bad name", "--export-root", str(tmp_path)], "model name 'bad name'"),
        (["--model-name", "m", "--export-root", str(tmp_path), "--port", "x"], "invalid int value"),
        (
            [
                "--model-name",
                "m",
                "--export-root",
                str(tmp_path),
                "--admin-token-file",
                str(tmp_path / "missing"),
            ],
            "cannot read token file",
        ),
        (
            ["--model-name", "m", "--export-root", str(tmp_path), "--label", "stable"],
            "--label 'stable': expected NAME=VERSION",
        ),
        (
            ["--model-name", "m", "--export-root", str(tmp_path), "--label", "1x=3"],
            "label '1x': use letters",
        ),
        (
            ["--model-name", "m", "--export-root", str(tmp_path), "--latest", "0"],
            "versions.latest must be >= 1, got 0",
        ),
        (
            ["--config", str(config), "--poll-seconds", "2"],
            "--poll-seconds describes the one model of the flags",
        ),
        (["--config", str(tmp_path / "nope.yaml")], "cannot read config file"),
        (
            ["--model-repository", str(tmp_path), "--latest", "2"],
            "--latest describes the one model of the flags; with --model-repository",
        ),
        (
            ["--model-name", "m", "--export-root", str(tmp_path), "--config-poll-seconds", "1"],
            "--config-poll-seconds needs --config or --model-repository",
        ),
        (["--config", str(bad_config)], "models[0]: unknown key 'export_rot'"),
        (
            ["--model-name", "m", "--export-root", str(tmp_path), "--run-thread", "fast"],
            "argument --run-thread: invalid choice: 'fast'",
        ),
    ]
    for argv, message in cases:
        proc = subprocess.run(
            [sys.executable, "-m", "swapserve", *argv], capture_output=True, text=True, timeout=60
        )
        assert proc.returncode == 2, (argv, proc.stderr)
        assert message in proc.stderr, (argv, proc.stderr)


def test_server_process_serves_then_stops_on_sigterm(tmp_path: Path) -> None:
    copy_version(HALF_PLUS_TWO, tmp_path, 123)
    server = ServerProcess(
        "--model-name", "hp2", "--export-root", str(tmp_path), "--poll-seconds", "0.2",
        "--run-thread", "caller",
    )  # fmt: skip
    try:

        def predict() -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [str(BIN / "swapserve-client"), f"--target=127.0.0.1:{server.port}", "predict",
                 "hp2", "--input", "x=[[1.0], [2.0]]"],
                capture_output=True, text=True, timeout=60,
            )  # fmt: skip

        result = wait_for(lambda: (r := predict()).returncode == 0 and r, what="a prediction")
        assert json.loads(result.stdout)["outputs"] == {"y": [[2.5], [3.0]]}
    finally:
        code = server.stop()
    assert code == 0, server.log
    lines = server.lines
    log = "".join(lines)
    assert "discovered version 123" in log
    assert re.search(r"version 123 loaded in [0-9.]+s; run thread: caller\n", log)
    assert re.search(r"version 123 serving \(loaded in [0-9.]+s\)", log)
    assert "received SIGTERM; shutting down" in log
    assert "unloaded version 123" in log


def test_client_cli_output_into_a_closed_pipe(tmp_path: Path) -> None:
    """``swapserve-client status m | head -1``: the reader leaves early; no traceback."""
    copy_version(HALF_PLUS_TWO, tmp_path, 1)
    with serving(tmp_path) as server:
        target = f"--target=127.0.0.1:{server.port}"
        client = subprocess.Popen(
            [sys.executable, "-m", "swapserve_client", target, "status", "m"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert client.stdout is not None and client.stderr is not None
        client.stdout.close()  # before the client writes anything
        err = client.stderr.read().decode()
        client.stderr.close()
        client.wait(30)
    assert "Traceback" not in err, err
    assert client.returncode == 1
