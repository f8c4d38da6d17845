"""Triton's log settings (``GET``/``POST /v2/logging``) mapped onto Python logging.

Triton's keys: ``log_info``, ``log_warning``, ``log_error`` (bools), ``log_verbose_level``
(an integer; > 0 is our DEBUG), ``log_format`` (``default`` or ``ISO8601``: ours is ISO 8601
either way) and ``log_file`` (only "": logs go to stderr, where the container runtime reads them).
The level applies to swapserve's loggers; the root logger keeps its handlers and format.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from swapserve.errors import InvalidArgument

_LOGGER = logging.getLogger("swapserve")
_BOOLS = ("log_info", "log_warning", "log_error")


def current() -> dict[str, Any]:
    """The settings as Triton reports them."""
    level = _LOGGER.getEffectiveLevel()
    return {
        "log_file": "",
        "log_info": level <= logging.INFO,
        "log_warning": level <= logging.WARNING,
        "log_error": level <= logging.ERROR,
        "log_verbose_level": 1 if level <= logging.DEBUG else 0,
        "log_format": "ISO8601",
    }


def update(body: Mapping[str, Any]) -> dict[str, Any]:
    """Applies Triton's settings in ``body`` (unnamed ones keep their value); returns them all.

    Raises:
        InvalidArgument: an unknown key, a value of the wrong type, or a log file.
    """
    now = current()
    for key, value in body.items():
        if key not in now:
            raise InvalidArgument(f"unknown log setting '{key}' (known: {', '.join(now)})")
        problem = _problem(key, value)
        if problem:
            raise InvalidArgument(f"log setting '{key}' {problem}, got {value!r}")
        now[key] = value
    if now["log_verbose_level"] > 0:
        level = logging.DEBUG
    elif now["log_info"]:
        level = logging.INFO
    elif now["log_warning"]:
        level = logging.WARNING
    elif now["log_error"]:
        level = logging.ERROR
    else:
        level = logging.CRITICAL
    _LOGGER.setLevel(level)
    return current()


def _problem(key: str, value: Any) -> str:
    """What is wrong with one setting's value ("" if nothing)."""
    if key in _BOOLS and not isinstance(value, bool):
        return "must be true or false"
    if key == "log_verbose_level" and (isinstance(value, bool) or not isinstance(value, int)):
        return "must be an integer"
    if key == "log_file" and value != "":
        return "is not supported (swapserve logs to stderr)"
    if key == "log_format" and value not in ("default", "ISO8601"):
        return "must be default or ISO8601"
    return ""
