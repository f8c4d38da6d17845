"""The served models by name: the one object transports talk to."""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Protocol

from swapserve.errors import FailedPrecondition, InvalidArgument, NotFound
from swapserve.metrics import Metrics
from swapserve.model.manager import ModelManager, ReloadOutcome
from swapserve.model.watcher import Watcher
from swapserve.settings import ModelSettings, SettingsError

log = logging.getLogger(__name__)


class Coordinator(Protocol):
    """Carries out admin changes: in one process directly; across workers, on every worker."""

    def reload(self, manager: ModelManager, version: int) -> ReloadOutcome:
        """Reloads (version 0) or pins ``version``; returns once it serves."""
        ...

    def unload(self, manager: ModelManager) -> int:
        """Stops serving the model until the next reload."""
        ...


class LocalCoordinator:
    """This process only."""

    def reload(self, manager: ModelManager, version: int) -> ReloadOutcome:
        """See ``ModelManager.reload``."""
        return manager.reload(version)

    def unload(self, manager: ModelManager) -> int:
        """See ``ModelManager.unload``."""
        return manager.unload()


@dataclass(frozen=True)
class ConfigChange:
    """What applying a model list changed, by model name."""

    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    updated: tuple[str, ...] = ()
    """Changed in place: version policy, labels, polling or warm-up."""
    replaced: tuple[str, ...] = ()
    """Export root or batching changed: a new manager loaded, then took over."""

    def __str__(self) -> str:
        parts = [
            f"{what} {', '.join(names)}"
            for what, names in (
                ("added", self.added),
                ("removed", self.removed),
                ("updated", self.updated),
                ("replaced", self.replaced),
            )
            if names
        ]
        return "; ".join(parts) or "no change"


ConfigSource = Callable[[], tuple[ModelSettings, ...]]
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
        metrics: shared by every model.
        factory: builds the manager of a model a config reload adds (None: models are fixed).
    """

    def __init__(
        self,
        managers: Iterable[ModelManager],
        metrics: Metrics | None = None,
        factory: ManagerFactory | None = None,
    ) -> None:
        self._managers = {m.name: m for m in managers}
        self.metrics = metrics or Metrics()
        self._watchers = {name: Watcher(m) for name, m in self._managers.items()}
        self._factory = factory
        self._listeners: list[Callable[[], None]] = []
        self._admin_lock = threading.Lock()  # one config change at a time
        self._started = False
        self._pending: set[str] = set()  # added by a config reload, not yet served
        self.coordinator: Coordinator = LocalCoordinator()
        self.config_source: ConfigSource | None = None
        """Re-reads the config file (set when the server runs with ``--config``)."""
        self.fixed_models = False
        """Refuse config changes that add or remove models (``--workers``)."""

    def reload(self, manager: ModelManager, version: int = 0) -> ReloadOutcome:
        """The admin reload path every protocol uses (through the coordinator)."""
        return self.coordinator.reload(manager, version)

    def unload(self, manager: ModelManager) -> int:
        """The admin unload path every protocol uses (through the coordinator)."""
        return self.coordinator.unload(manager)

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
            raise NotFound(f"model '{name}' is not served here (models: {served})") from None

    def find(self, name: str) -> ModelManager | None:
        """The manager for ``name``, or None."""
        return self._managers.get(name)

    def all_serving(self) -> bool:
        """True when every model has a version serving (readiness). A model added by a config
        reload counts once it has served: adding a model never takes a serving server out of
        its load balancer."""
        ready = True
        for m in self._managers.values():
            if m.serving_version:
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

    # ---- config reload ------------------------------------------------------------------------

    def reload_config(self) -> ConfigChange:
        """Re-reads the config file and applies it (SIGHUP, HandleReloadConfigRequest).

        Raises:
            FailedPrecondition: the server runs without ``--config``.
            InvalidArgument: the file is invalid (nothing changed; the message names the key).
        """
        if self.config_source is None:
            raise FailedPrecondition(
                "this server was started without --config; there is no config file to re-read"
            )
        try:
            models = self.config_source()
        except SettingsError as err:
            raise InvalidArgument(f"config not applied: {err}") from None
        return self.apply(models)

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
            if (added or removed) and (self.fixed_models or self._factory is None):
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
        assert self._factory is not None  # checked by apply
        manager = self._factory(settings)
        for listener in self._listeners:
            manager.subscribe(listener)
        return manager, Watcher(manager)

    def _add(self, settings: ModelSettings) -> None:
        manager, watcher = self._make(settings)
        self._pending.add(settings.name)
        self._managers = {**self._managers, settings.name: manager}
        self._watchers[settings.name] = watcher
        if self._started:
            watcher.start()
        log.info("model %s: added from %s", settings.name, settings.export_root)

    def _replace(self, old: ModelManager, settings: ModelSettings) -> None:
        """A new manager loads first; requests move to it only once it serves.

        Raises:
            FailedPrecondition: the new manager could not serve (the old one keeps serving).
        """
        manager, watcher = self._make(settings)
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
        log.info("model %s: removed", name)


def _differences(a: ModelSettings, b: ModelSettings) -> set[str]:
    return {f.name for f in dataclasses.fields(a) if getattr(a, f.name) != getattr(b, f.name)}
