"""Start-up objects are frozen out of the garbage collector; later versions are still freed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from helpers import HALF_PLUS_TWO, copy_version

SCRIPT = """
import gc, sys, weakref
from pathlib import Path
from swapserve.runtime.heap import freeze_startup_objects
from swapserve.model.loaded_version import LoadedVersion
from swapserve.config.model_settings import SessionSettings

freeze_startup_objects()
frozen = gc.get_freeze_count()
version = LoadedVersion.load(1, Path(sys.argv[1]), SessionSettings())
graph = weakref.ref(version._graph)
version.close()
del version
gc.collect()
print(frozen, graph() is None)
"""


def test_versions_loaded_after_the_freeze_are_collected(tmp_path: Path) -> None:
    """TensorFlow's import-time objects are frozen (full collections skip them), but a version
    loaded afterwards -- a tf.Graph full of reference cycles -- is still reclaimed once
    unloaded, so swaps do not leak."""
    copy_version(HALF_PLUS_TWO, tmp_path, 1)
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path / "1")],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    frozen, freed = proc.stdout.split()
    assert int(frozen) > 100_000  # TensorFlow's modules, classes and functions
    assert freed == "True"
