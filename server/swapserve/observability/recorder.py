"""Where every finished call goes: the metrics and statistics, then the access and request logs.

Transports finish a ``CallRecord`` and hand it to ``CallRecorder.observe`` (through their one
call path, ``swapserve.transport.calls``); the data plane never sees it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from swapserve.observability.calls import CallRecord
from swapserve.observability.metrics import Metrics

log = logging.getLogger(__name__)


class CallRecorder:
    """Counts, times and logs finished calls.

    Args:
        metrics: requests and statistics.
        known: True for a served model's name (others are labelled "" so clients cannot create
            label values).
        observers: called with every finished call after the metrics (access and request
            logs); they must not block.
    """

    def __init__(
        self,
        metrics: Metrics,
        known: Callable[[str], bool],
        observers: Sequence[Callable[[CallRecord], None]] = (),
    ) -> None:
        self._metrics = metrics
        self._known = known
        self._observers = tuple(observers)
        self.wants_peer = bool(self._observers)
        """A call's peer is wanted (the access and request logs): transports skip asking for
        it otherwise (``context.peer()`` builds a string on every RPC)."""

    def observe(self, record: CallRecord) -> None:
        """A finished call. Never raises: recording a call must not fail it."""
        try:
            # A call some version took names a served model; only others need the lookup.
            known = bool(record.version) or self._known(record.model)
            self._metrics.observe(record, known)
            for observer in self._observers:
                observer(record)
        except Exception:
            log.exception("recording a %s %s call failed", record.protocol, record.method)
