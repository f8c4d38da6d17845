"""At most one log line per kind of problem per interval, with a count of those left out: a
flood of bad traffic must not flood the log (nor hide that it happened)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class Throttle:
    """Says whether a report of one kind may be logged now.

    Args:
        every: seconds between two reports of one kind.
        clock: the time source (tests pass their own).
    """

    def __init__(self, every: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._every = every
        self._clock = clock
        self._lock = threading.Lock()  # guards _next and _suppressed
        self._next: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def allow(self, kind: str) -> int | None:
        """None: do not log this one (it is counted). Else log it, mentioning the returned
        number of reports of this kind left out since the last one logged."""
        with self._lock:
            now = self._clock()
            if now < self._next.get(kind, 0.0):
                self._suppressed[kind] = self._suppressed.get(kind, 0) + 1
                return None
            self._next[kind] = now + self._every
            return self._suppressed.pop(kind, 0)
