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
import threading
import time

log = logging.getLogger(__name__)


def freeze_startup_objects() -> None:
    """Collects once, then freezes what is left; call once, after imports, before serving."""
    gc.collect()
    gc.freeze()
    log.debug(
        "froze %d start-up objects out of the garbage collector's scans", gc.get_freeze_count()
    )


class Trimmer:
    """Gives freed heap memory back to the OS after large transient allocations (a big JSON
    body parses into ~13x its size in Python objects; freed, glibc keeps most of it mapped).
    ``malloc_trim`` runs at most once per ``every`` seconds; a no-op where glibc is absent."""

    def __init__(self, every: float = 1.0) -> None:
        import ctypes  # noqa: PLC0415
        import ctypes.util  # noqa: PLC0415

        self._every = every
        self._lock = threading.Lock()  # guards _next
        self._next = 0.0
        name = ctypes.util.find_library("c")
        libc = ctypes.CDLL(name) if name else None
        self._trim = getattr(libc, "malloc_trim", None)

    def __call__(self) -> None:
        if self._trim is None:
            return
        with self._lock:
            now = time.monotonic()
            if now < self._next:
                return
            self._next = now + self._every
        self._trim(0)
