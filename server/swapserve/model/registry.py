"""The served models by name: the one object transports talk to."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Protocol

from swapserve.errors import InvalidArgument, NotFound
from swapserve.metrics import Metrics
from swapserve.model.manager import ModelManager, ReloadOutcome
from swapserve.model.watcher import Watcher


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


class ModelRegistry:
    """Holds one ``ModelManager`` (and its watcher) per configured model."""

    def __init__(self, managers: Iterable[ModelManager], metrics: Metrics | None = None) -> None:
        self._managers = {m.name: m for m in managers}
        self.metrics = metrics or Metrics()
        self._watchers = [Watcher(m) for m in self._managers.values()]
        self.coordinator: Coordinator = LocalCoordinator()

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
        try:
            return self._managers[name]
        except KeyError:
            served = ", ".join(f"'{n}'" for n in sorted(self._managers)) or "none"
            raise NotFound(f"model '{name}' is not served here (models: {served})") from None

    def find(self, name: str) -> ModelManager | None:
        """The manager for ``name``, or None."""
        return self._managers.get(name)

    def all_serving(self) -> bool:
        """True when every model has a version serving (readiness)."""
        return all(m.serving_version for m in self._managers.values())

    def subscribe(self, listener: Callable[[], None]) -> None:
        """Calls ``listener()`` whenever any model's served version changes."""
        for m in self._managers.values():
            m.subscribe(listener)

    def __iter__(self) -> Iterator[ModelManager]:
        return iter(self._managers.values())

    def start(self) -> None:
        """Starts watching every model's export root."""
        for w in self._watchers:
            w.start()

    def close(self, timeout: float = 10.0) -> None:
        """Stops the watchers, then releases every loaded version."""
        for w in self._watchers:
            w.stop(timeout)
        for m in self._managers.values():
            m.close(timeout)
