"""The access log (``--access-log``): one line per call on the ``swapserve.access`` logger, as
text or JSON per ``--log-format``, sampled with ``--access-log-sample``.

A line says what a reader needs to find a call: protocol, method, model, the version that
answered, signature, rows, status, latency, peer and trace id. Never the payload and never a
header, so no token can reach the log.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable

from swapserve.observability.calls import CallRecord

log = logging.getLogger("swapserve.access")


class AccessLog:
    """Writes sampled call records to the access logger.

    Args:
        sample: the fraction of calls logged (1: every call).
        draw: a uniform number in [0, 1) per call (tests pass a fixed one).
    """

    def __init__(self, sample: float = 1.0, draw: Callable[[], float] = random.random) -> None:
        if not 0 < sample <= 1:
            raise ValueError(f"access log sample must be in (0, 1], got {sample}")
        self._sample = sample
        self._draw = draw

    def __call__(self, record: CallRecord) -> None:
        if self._sample < 1 and self._draw() >= self._sample:
            return
        ms = record.seconds * 1e3
        log.info(
            "%s %s model=%s version=%s signature=%s rows=%d code=%s ms=%.3f peer=%s%s",
            record.protocol,
            record.method,
            _text(record.model),
            record.version or "-",
            record.signature or "-",
            record.rows,
            record.code,
            ms,
            record.peer or "-",
            f" trace={record.trace_id}" if record.trace_id else "",
            extra={
                "protocol": record.protocol,
                "method": record.method,
                "model": record.model[:_LONGEST],
                "version": record.version,
                "signature": record.signature,
                "rows": record.rows,
                "code": record.code,
                "ms": round(ms, 3),
                "peer": record.peer,
                "trace_id": record.trace_id,
                "event": "access",
            },
        )


_LONGEST = 256


def _text(value: str) -> str:
    """A client-chosen name as one safe token: no line breaks or spaces to forge a line with."""
    if not value:
        return "-"
    value = value[:_LONGEST]
    if value.isprintable() and " " not in value:
        return value
    return repr(value)
