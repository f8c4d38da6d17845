"""A thread per model that polls its export root; it never stops on an error."""

from __future__ import annotations

import logging
import threading

from swapserve.model.manager import ModelManager

log = logging.getLogger(__name__)


class Watcher:
    """Calls ``manager.poll()`` every ``poll_seconds`` until stopped.

    The first tick runs at once with Reload's short settle check, so a server with a complete
    export on disk starts serving without waiting a poll period.
    """

    def __init__(self, manager: ModelManager) -> None:
        self._manager = manager
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"watch-{manager.name}", daemon=True)

    def start(self) -> None:
        """Starts polling in the background."""
        self._thread.start()

    def stop(self, timeout: float | None = None) -> None:
        """Stops polling; a load in progress finishes first (up to ``timeout``)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        first = True
        while not self._stop.is_set():
            try:
                self._manager.poll(initial=first)
                first = False
            except Exception:
                # A watcher that dies silently leaves stale versions serving forever.
                log.exception("model %s: poll failed; will retry", self._manager.name)
            self._stop.wait(self._manager.settings.poll_seconds)  # a config reload may change it
