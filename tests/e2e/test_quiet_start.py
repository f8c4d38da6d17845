"""Start-up on a CPU machine prints only swapserve's own log lines at the default level (no absl
preamble, no oneDNN/CUDA probe lines, no cuInit error); ``--log-level DEBUG`` shows them."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

from helpers import HALF_PLUS_TWO, copy_version, wait_for
from swapserve_client import Client

_OURS = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (DEBUG|INFO|WARNING|ERROR) [\w.]+: ")


def _run(root: Path, *flags: str) -> list[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TF_CPP_")}
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "swapserve"), "--model-name", "m", "--export-root",
         str(root), "--host", "127.0.0.1", "--port", "0", "--drain-seconds", "0", *flags],
        stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    assert proc.stderr is not None
    lines: list[str] = []
    for line in proc.stderr:  # until the model serves: TensorFlow's import and first session
        lines.append(line.rstrip("\n"))
        if "version 123 serving" in line:
            break
    port = next(
        int(m.group(1)) for ln in lines if (m := re.search(r"listening on [^:]+:(\d+)", ln))
    )
    with Client(f"127.0.0.1:{port}", timeout=30) as client:
        wait_for(lambda: client.predict("m", {"x": [[1.0]]}, cast=True)["y"].tolist() == [[2.5]])
    proc.send_signal(signal.SIGTERM)
    _, rest = proc.communicate(timeout=60)
    return lines + rest.splitlines()


def test_a_quiet_start_and_a_verbose_debug(tmp_path: Path) -> None:
    copy_version(HALF_PLUS_TWO, tmp_path, 123)
    quiet = _run(tmp_path)
    assert quiet and all(_OURS.match(line) for line in quiet), "\n".join(quiet)
    debug = "\n".join(_run(tmp_path, "--log-level", "DEBUG"))
    assert "All log messages before absl::InitializeLog()" in debug, debug[:3000]
