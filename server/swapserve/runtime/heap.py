"""Keeping Python's cyclic garbage collector off the request path.

Importing TensorFlow leaves ~300k objects that live as long as the process. Python's oldest
generation holds them all, so each full collection walks them: ~200 ms during which no request
thread runs. Under load, in-flight request objects get promoted and trigger one now and then
(the MLP at 64 clients in ``make bench``: one of ~0.2 s in a 10 s run, which alone set the
p99.9 near 0.25-0.29 s). ``gc.freeze`` moves the objects alive at start-up into a permanent
generation the collector skips (that collection then takes ~1 ms); objects made later (loaded
versions, requests) are collected as before, so swapped-out versions are still freed.
"""

from __future__ import annotations

import gc
import logging

log = logging.getLogger(__name__)


def freeze_startup_objects() -> None:
    """Collects once, then freezes what is left; call once, after imports, before serving."""
    gc.collect()
    gc.freeze()
    log.debug(
        "froze %d start-up objects out of the garbage collector's scans", gc.get_freeze_count()
    )
