"""The served models by name, their watchers, and config changes (add/remove/update/replace).

Transports never talk to it: they go through the data plane (``swapserve.dataplane.requests``)."""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable, Iterable, Iterator

from swapserve.config.model_settings import ModelSettings
from swapserve.errors import FailedPrecondition, InvalidArgument, NotFound
from swapserve.model.events import NO_EVENTS, ModelEvents
from swapserve.model.manager import ModelManager
from swapserve.model.outcomes import ConfigChange
from swapserve.model.watcher import Watcher

log = logging.getLogger(__name__)


ManagerFactory = Callable[[ModelSettings], ModelManager]

# Settings a running manager can take on; any other change builds a new manager.
_IN_PLACE = {"poll_seconds", "settle_seconds", "reload_settle_seconds", "warm_up", "versions",
             "labels"}  # fmt: skip


class ModelRegistry:
    """Holds one ``ModelManager`` (and its watcher) per configured model.

    Request threads read the name -> manager map without a lock: it is replaced, never changed
    in place, when a config reload adds or removes models.

    Args:
        managers: the models to serve at start.
        events: told of removed models (managers get theirs from ``factory``).
        factory: builds the manager of a model a config change adds or replaces (None: models
            are fixed).
        fixed_models: refuse config changes that add or remove models (``--workers``: the
            shared state has one slot per model at start); updates and replacements still apply.
        unloaded: models that start unloaded (listed, loading nothing) until a reload.
        explicit: a model a config change adds starts unloaded too (Triton's explicit mode:
            only a load request loads a model).
    """

    def __init__(
        self,
        managers: Iterable[ModelManager],
        events: ModelEvents = NO_EVENTS,
        factory: ManagerFactory | None = None,
        *,
        fixed_models: bool = False,
        unloaded: Iterable[str] = (),
        explicit: bool = False,
    ) -> None:
        self._managers = {m.name: m for m in managers}  # replaced whole under _admin_lock
        for name in unloaded:
            self._managers[name].unload()
        self._explicit = explicit
        self._events = events
        self._watchers = {name: Watcher(m) for name, m in self._managers.items()}
        self._factory = factory
        self.fixed_models = fixed_models or factory is None
        self._listeners: list[Callable[[], None]] = []
        self._admin_lock = threading.Lock()  # one config change at a time; guards _watchers
        self._started = False  # guarded by _admin_lock
        self._pending: set[str] = set()  # added by a config reload, not yet served

    def get(self, name: str) -> ModelManager:
        """The manager for ``name``.

        Raises:
            InvalidArgument: an empty name.
            NotFound: no such model, listing the ones served.
        """
        if not name:
            raise InvalidArgument("model_name is required")
        managers = self._managers
        try:
            return managers[name]
        except KeyError:
            served = ", ".join(f"'{n}'" for n in sorted(managers)) or "none"
            raise NotFound(
                f"model '{name}' is not served here (models: {served})", servable=f"Latest({name})"
            ) from None

    def find(self, name: str) -> ModelManager | None:
        """The manager for ``name``, or None."""
        return self._managers.get(name)

    def all_serving(self) -> bool:
        """True when every model has a version serving (readiness). A model added by a config
        reload counts once it has served: adding a model never takes a serving server out of
        its load balancer; nor does unloading one on request (RepositoryModelUnload)."""
        ready = True
        for m in self._managers.values():
            if m.serving_version or m.unloaded:
                self._pending.discard(m.name)
            elif m.name not in self._pending:
                ready = False
        return ready

    def subscribe(self, listener: Callable[[], None]) -> None:
        """Calls ``listener()`` whenever any model's served version, or the model set, changes."""
        self._listeners.append(listener)
        for m in self._managers.values():
            m.subscribe(listener)

    def __iter__(self) -> Iterator[ModelManager]:
        return iter(list(self._managers.values()))

    def start(self) -> None:
        """Starts watching every model's export root."""
        with self._admin_lock:
            self._started = True
            for w in self._watchers.values():
                w.start()

    def close(self, timeout: float = 10.0) -> None:
        """Stops the watchers, then releases every loaded version."""
        with self._admin_lock:
            self._started = False
            for w in self._watchers.values():
                w.stop(timeout)
            for m in self._managers.values():
                m.close(timeout)

    # ---- config changes -----------------------------------------------------------------------

    def apply(self, models: tuple[ModelSettings, ...]) -> ConfigChange:
        """Makes the served models match ``models``: adds, removes, updates or replaces models;
        models whose settings did not change are not touched.

        Raises:
            FailedPrecondition: models would be added or removed while that is not possible.
        """
        with self._admin_lock:
            current = self._managers
            wanted = {m.name: m for m in models}
            added = tuple(n for n in wanted if n not in current)
            removed = tuple(n for n in current if n not in wanted)
            if (added or removed) and self.fixed_models:
                raise FailedPrecondition(
                    "adding or removing models needs a restart in this mode (--workers); "
                    f"wanted to add {list(added)} and remove {list(removed)}"
                )
            changed = {
                name: settings
                for name, settings in wanted.items()
                if name in current and current[name].settings != settings
            }
            updated = tuple(
                n for n, m in changed.items() if _differences(current[n].settings, m) <= _IN_PLACE
            )
            replaced = tuple(n for n in changed if n not in updated)
            # Replacements first: one that cannot serve stops the change before the rest.
            for name in replaced:
                self._replace(current[name], changed[name])
            for name in updated:
                current[name].reconfigure(changed[name])
            for name in added:
                self._add(wanted[name])
            for name in removed:
                self._remove(name)
            change = ConfigChange(added, removed, updated, replaced)
        if added or removed:
            for listener in self._listeners:
                listener()
        log.info("config applied: %s", change)
        return change

    def _make(self, settings: ModelSettings) -> tuple[ModelManager, Watcher]:
        if self._factory is None:
            raise FailedPrecondition(f"model '{settings.name}' cannot be rebuilt in this mode")
        manager = self._factory(settings)
        for listener in self._listeners:
            manager.subscribe(listener)
        return manager, Watcher(manager)

    def _add(self, settings: ModelSettings) -> None:
        manager, watcher = self._make(settings)
        if self._explicit:
            manager.unload()
        self._pending.add(settings.name)
        self._managers = {**self._managers, settings.name: manager}
        self._watchers[settings.name] = watcher
        if self._started:
            watcher.start()
        log.info("model %s: added from %s", settings.name, settings.export_root)

    def _replace(self, old: ModelManager, settings: ModelSettings) -> None:
        """A new manager loads first; requests move to it only once it serves. A model
        unloaded on request stays unloaded with its new settings.

        Raises:
            FailedPrecondition: the new manager could not serve (the old one keeps serving).
        """
        manager, watcher = self._make(settings)
        if old.unloaded:
            manager.unload()
        manager.poll(initial=True)
        if old.serving_version and not manager.serving_version:
            manager.close()
            raise FailedPrecondition(
                f"model '{settings.name}' keeps its previous settings: nothing could be loaded "
                f"with the new ones from {settings.export_root} "
                f"({manager.unavailable_reason()})"
            )
        old_watcher = self._watchers[settings.name]
        self._managers = {**self._managers, settings.name: manager}
        self._watchers[settings.name] = watcher
        if self._started:
            watcher.start()
        old_watcher.stop()
        old.close()
        log.info("model %s: replaced (now from %s)", settings.name, settings.export_root)

    def _remove(self, name: str) -> None:
        managers = dict(self._managers)
        manager = managers.pop(name)
        self._managers = managers
        self._watchers.pop(name).stop()
        manager.close()
        self._events.model_removed(name)
        log.info("model %s: removed", name)


def _differences(a: ModelSettings, b: ModelSettings) -> set[str]:
    return {f.name for f in dataclasses.fields(a) if getattr(a, f.name) != getattr(b, f.name)}
