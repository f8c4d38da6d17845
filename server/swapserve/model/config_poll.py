"""Polling the config file or model repository (``--config-poll-seconds``,
``--model_config_file_poll_wait_seconds``): what SIGHUP does, on a timer, because a Kubernetes
ConfigMap update arrives as a changed file and never as a signal."""

from __future__ import annotations

import logging
import threading

from swapserve.errors import SwapserveError
from swapserve.model.registry import ModelRegistry

log = logging.getLogger(__name__)


class ConfigPoller:
    """Re-reads the registry's config every ``seconds`` and applies it when it changed.

    A refused change (invalid file, a replaced model that cannot load) is logged once per
    distinct error -- not at every poll -- and shown by ``swapserve_config_ok``; the running
    config stays until the file changes again.
    """

    def __init__(self, registry: ModelRegistry, seconds: float) -> None:
        self._registry = registry
        self._seconds = seconds
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_error: str | None = None  # only the poll thread touches it

    def start(self) -> None:
        """Polls on a daemon thread until ``stop``."""
        self._thread = threading.Thread(target=self._run, name="config-poll", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stops polling; a read-and-apply in progress finishes first (up to ``timeout``)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.wait(self._seconds):
            self.poll_once()

    def poll_once(self) -> None:
        """One poll: read, compare, apply; never raises."""
        try:
            self._registry.reload_config(if_changed=True)
        except SwapserveError as err:
            if err.message != self._last_error:
                log.error("config poll: %s; the running config is kept", err.message)
                self._last_error = err.message
            return
        except Exception:
            log.exception("config poll failed; the running config is kept")
            return
        if self._last_error is not None:
            log.info("config poll: the config on disk is served again")
            self._last_error = None
