"""Full garbage collections under load, with and without swapserve's start-up ``gc.freeze``.

The server runs through this file, which times every generation-2 collection (wall clock, so
the bench can keep those inside the load window) and writes them to a JSON file as they happen; with
``--no-freeze`` it first turns ``gc.freeze`` into a no-op, i.e. the server as it was before.

    python bench/gc_pauses.py serve [--no-freeze] STATS_JSON SWAPSERVE_FLAGS...
"""

from __future__ import annotations

import gc
import json
import sys
import time
from pathlib import Path
from typing import Any


def serve(argv: list[str]) -> None:
    freeze = argv[0] != "--no-freeze"
    stats_path, flags = (argv[0], argv[1:]) if freeze else (argv[1], argv[2:])
    if not freeze:
        gc.freeze = lambda: None
    collections: list[tuple[float, float]] = []
    started = [0.0]

    def timer(phase: str, info: dict[str, Any]) -> None:
        if info["generation"] != 2:
            return
        if phase == "start":
            started[0] = time.perf_counter()
        else:
            collections.append((time.time(), time.perf_counter() - started[0]))
            # Written at each one: the server leaves through os._exit, past any finally.
            Path(stats_path).write_text(json.dumps(collections))

    Path(stats_path).write_text("[]")
    gc.callbacks.append(timer)
    from swapserve.cli import main  # after the patch

    main(flags)


def in_window(stats_path: Path, begin: float, end: float) -> dict[str, Any]:
    """The generation-2 collections that started between ``begin`` and ``end`` (wall clock)."""
    pauses = [d for t, d in json.loads(stats_path.read_text()) if begin <= t - d <= end]
    return {
        "full_collections": len(pauses),
        "longest_collection_ms": round(max(pauses, default=0.0) * 1000, 1),
    }


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "serve":
        serve(sys.argv[2:])
    else:
        sys.exit(f"usage: {sys.argv[0]} serve [--no-freeze] STATS_JSON SWAPSERVE_FLAGS...")
