"""The client package works where TensorFlow (and the server package) cannot be imported."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from helpers import HALF_PLUS_TWO, copy_version, serving

SCRIPT = textwrap.dedent(
    """
    import sys

    class Block:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("tensorflow", "swapserve", "keras"):
                raise ImportError(f"{name} is blocked in this test")
            return None

    sys.meta_path.insert(0, Block())
    import numpy as np
    from swapserve_client import Client

    try:
        import tensorflow  # noqa: F401
    except ImportError:
        pass
    else:
        raise SystemExit("the import blocker does not work")

    with Client(sys.argv[1]) as client:
        out = client.predict("m", {"x": np.array([[1.0], [3.0]], np.float32)})
    assert not [m for m in sys.modules if m.split(".")[0] in ("tensorflow", "swapserve")]
    print(out["y"].ravel().tolist())
    """
)


def test_client_predicts_without_tensorflow(tmp_path: Path) -> None:
    copy_version(HALF_PLUS_TWO, tmp_path, 1)
    with serving(tmp_path) as server:
        proc = subprocess.run(
            [sys.executable, "-c", SCRIPT, f"127.0.0.1:{server.port}"],
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[2.5, 3.5]"
