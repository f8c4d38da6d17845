"""Re-reading the model list: on SIGHUP, on HandleReloadConfigRequest without a config, and every
``--config-poll-seconds`` (``--model_config_file_poll_wait_seconds``) -- on a timer because a
Kubernetes ConfigMap update arrives as a changed file and never as a signal.

``ConfigReloader`` reads a ``ModelSource`` and hands the list to ``ModelRegistry.apply``; the
registry only knows how to make the served models match a list, not where lists come from.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from swapserve.config.model_lists import ModelSource
from swapserve.config.model_settings import ModelSettings, SettingsError
from swapserve.errors import FailedPrecondition, InvalidArgument, NotFound, SwapserveError
from swapserve.model.events import NO_EVENTS, ModelEvents
from swapserve.model.outcomes import ConfigChange
from swapserve.model.registry import ModelRegistry

log = logging.getLogger(__name__)


class ConfigReloader:
    """Reads ``source`` and applies it to ``registry``; ``events.config_read`` says whether what
    is on disk now is served (``swapserve_config_ok``).

    Args:
        registry: the served models.
        source: the config file or model repository.
        events: told of every read's outcome.
    """

    def __init__(
        self,
        registry: ModelRegistry,
        source: ModelSource,
        events: ModelEvents = NO_EVENTS,
        settle_seconds: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._registry = registry
        self._source = source
        self._events = events
        self._settle = settle_seconds
        self._clock = clock
        self._lock = threading.Lock()  # one read-and-apply at a time; guards the fields below
        self._last_read = tuple(m.settings for m in registry)
        self._last_applied = True  # _last_read was applied in full
        self._seen: tuple[tuple[ModelSettings, ...] | None, str] = (self._last_read, "")
        self._seen_since = clock()  # when the source first read as _seen
        self._failed = ""  # the error of the last refused read, counted once

    def reload(self, if_changed: bool = False) -> ConfigChange | None:
        """Reads the source and applies it.

        Args:
            if_changed: the poller: apply only a read that differs from the last one applied,
                and only once it has settled -- read the same for ``settle_seconds``, or
                replaced atomically (a rename, a ConfigMap's symlink swap) -- so a file caught
                half-written is never applied. A refused change is not retried (nor counted
                again) until the source changes again. None: nothing applied.

        Raises:
            FailedPrecondition: a changed model could not load with its new settings (it keeps
                serving with the old ones), or models would be added or removed with --workers.
            InvalidArgument: the source is invalid (nothing changed; the message names the key).
        """
        events = self._events
        with self._lock:
            try:
                models: tuple[ModelSettings, ...] | None = self._source()
                error = ""
            except SettingsError as err:
                models, error = None, str(err)
            if if_changed and not self._settled(models, error):
                return None
            if error:
                if not (if_changed and error == self._failed):
                    events.config_read("failed", ok=False)
                self._failed = error
                raise InvalidArgument(f"config not applied: {error}")
            assert models is not None
            self._failed = ""
            problems = self._source.problems
            events.config_problems(problems)
            if if_changed and models == self._last_read:
                events.config_read("unchanged", ok=not problems and self._last_applied)
                return None
            self._last_read, self._last_applied = models, False
            try:
                change = self._registry.apply(models)
            except FailedPrecondition:
                events.config_read("failed", ok=False)
                raise
            self._last_applied = True
            events.config_read("applied", ok=not problems)
            return change

    def reload_model(self, name: str) -> ConfigChange:
        """Reads the source and applies model ``name``'s part only: its settings now (added if
        new), every other model as it is served (Triton's explicit mode: loading a model
        re-reads that model's config and no other).

        Raises:
            NotFound: the source has no such model.
            InvalidArgument: the source, or this model's part of it, is invalid.
            FailedPrecondition: as ``reload``.
        """
        with self._lock:
            try:
                models = {m.name: m for m in self._source()}
            except SettingsError as err:
                raise InvalidArgument(f"config not applied: {err}") from None
            problem = self._source.problems.get(name)
            if problem:
                raise InvalidArgument(f"model '{name}' not loaded: {problem}")
            if name not in models:
                raise NotFound(f"model '{name}' is not in the model repository")
            current = {m.name: m.settings for m in self._registry}
            current[name] = models[name]
            return self._registry.apply(tuple(current.values()))

    def _settled(self, models: tuple[ModelSettings, ...] | None, error: str) -> bool:
        """Whether a poll's read may be acted on: it reads as the previous polls did for the
        settle period, or the source was replaced atomically since the last read."""
        now = self._clock()
        if (models, error) != self._seen:
            self._seen, self._seen_since = (models, error), now
            if not self._source.replaced_atomically() and self._settle > 0:
                log.debug("config changed on disk; applying once it reads the same for %gs",
                          self._settle)  # fmt: skip
                return False
        return self._source.replaced_atomically() or now - self._seen_since >= self._settle


class ConfigPoller:
    """Calls ``reloader.reload(if_changed=True)`` every ``seconds``.

    A refused change (invalid file, a replaced model that cannot load) is logged once per
    distinct error -- not at every poll -- and shown by ``swapserve_config_ok``; the running
    config stays until the file changes again.
    """

    def __init__(self, reloader: ConfigReloader, seconds: float) -> None:
        self._reloader = reloader
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
            self._reloader.reload(if_changed=True)
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
