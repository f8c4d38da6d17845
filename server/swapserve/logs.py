"""Logging set-up for the entry points: plain text, or JSON through python-json-logger.

Only ``cli.py`` and the worker processes call ``configure``; library code just logs. Model events
carry ``model``, ``version`` and ``event`` fields (``extra=``), which JSON output shows as keys.
"""

from __future__ import annotations

import logging
import os

from pythonjsonlogger.json import JsonFormatter

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
    root.setLevel(level)
    if level != "DEBUG":
        # TensorFlow's own INFO/WARNING chatter (C++ and Python) drowns ours; errors still show.
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        logging.getLogger("tensorflow").setLevel(logging.ERROR)
