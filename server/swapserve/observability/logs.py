"""Logging set-up for the entry points: plain text, or JSON through python-json-logger.

Only ``cli.py`` and the worker processes call ``configure``; library code just logs. Model events
carry ``model``, ``version`` and ``event`` fields (``extra=``), which JSON output shows as keys.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from pythonjsonlogger.json import JsonFormatter

from swapserve.runtime import quiet

FORMATS = ("text", "json")


def configure(level: str, fmt: str = "text", worker: int | None = None) -> None:
    """Configures the root logger once, for a process."""
    handler = logging.StreamHandler()
    tag = "" if worker is None else f" [worker {worker}]"
    if fmt == "json":
        static = {} if worker is None else {"worker": worker}
        handler.setFormatter(
            JsonFormatter(
                "%(asctime)s %(levelname)s %(name)s %(message)s",
                rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
                static_fields=static,
            )
        )
    else:
        handler.setFormatter(
            logging.Formatter(f"%(asctime)s %(levelname)s{tag} %(name)s: %(message)s")
        )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    grpc_common = logging.getLogger("grpc._common")  # where gRPC logs undecodable messages
    if not any(isinstance(f, UndecodableRequests) for f in grpc_common.filters):
        grpc_common.addFilter(UndecodableRequests())
    root.setLevel(level)
    quiet.configure(level == "DEBUG")
    if level != "DEBUG":
        # TensorFlow's own Python-side chatter drowns ours; errors still show.
        logging.getLogger("tensorflow").setLevel(logging.ERROR)


class UndecodableRequests(logging.Filter):
    """gRPC logs a full traceback for every request it cannot deserialize (and answers it
    INTERNAL "Exception deserializing request!", as gRPC does): garbage traffic would flood the
    log. This turns them into one warning line at most every ``every`` seconds, with a count."""

    def __init__(self, every: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self._every = every
        self._clock = clock
        self._lock = threading.Lock()  # guards _next and _suppressed
        self._next = 0.0
        self._suppressed = 0

    def filter(self, record: logging.LogRecord) -> bool:
        if "deserializing" not in str(record.msg):
            return True
        with self._lock:
            now = self._clock()
            if now < self._next:
                self._suppressed += 1
                return False
            suppressed, self._suppressed = self._suppressed, 0
            self._next = now + self._every
        error = record.exc_info[1] if record.exc_info else None
        record.msg = "could not deserialize a request (%s: %s); answered INTERNAL%s"
        record.args = (
            type(error).__name__ if error else "error",
            str(error)[:200] if error else "",
            f"; {suppressed} more since the last report" if suppressed else "",
        )
        record.exc_info = record.exc_text = None
        record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True
