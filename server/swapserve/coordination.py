"""Carrying out admin changes (Reload, Unload): the ``Coordinator`` the data plane calls, and the
one-process ``LocalCoordinator``; ``cluster/coordinator.py`` is the one for ``--workers``."""

from __future__ import annotations

from typing import Protocol

from swapserve.model.manager import ModelManager, ReloadOutcome


class Coordinator(Protocol):
    """Carries out admin changes: in one process directly; across workers, on every worker."""

    def start(self) -> None:
        """Begins following other processes' changes (after the server started)."""
        ...

    def stop(self) -> None:
        """Stops following them (before the server stops)."""
        ...

    def reload(self, manager: ModelManager, version: int) -> ReloadOutcome:
        """Reloads (version 0) or pins ``version``; returns once it serves."""
        ...

    def unload(self, manager: ModelManager) -> int:
        """Stops serving the model until the next reload."""
        ...


class LocalCoordinator:
    """This process only."""

    def start(self) -> None:
        """Nothing to follow."""

    def stop(self) -> None:
        """Nothing to stop."""

    def reload(self, manager: ModelManager, version: int) -> ReloadOutcome:
        """See ``ModelManager.reload``."""
        return manager.reload(version)

    def unload(self, manager: ModelManager) -> int:
        """See ``ModelManager.unload``."""
        return manager.unload()
