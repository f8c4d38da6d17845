"""The data plane's admin calls: Reload (rescan or pin), Unload, and applying a model list or
re-reading the config file -- beside ``DataPlane``, as MLServer keeps its model-repository
handlers beside its data plane. Both transports hand admin calls here; who may make them is the
transports' one access rule (``swapserve.transport.access``).

Admin calls wait on loads, so they are admitted rather than queued: at most ``max_admin`` run at
once and more are refused at once with RESOURCE_EXHAUSTED (a queued call would hold a transport
thread). They go through a ``Coordinator``: in one process directly, with ``--workers`` on
every worker (``swapserve.cluster.coordinator``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Protocol

from swapserve.config.model_settings import ModelSettings
from swapserve.config.reload import ConfigReloader
from swapserve.dataplane.gate import CallGate, gated
from swapserve.errors import FailedPrecondition, ResourceExhausted, SwapserveError
from swapserve.model.manager import ModelManager, ReloadOutcome
from swapserve.model.outcomes import ConfigChange
from swapserve.model.registry import ModelRegistry
from swapserve.runtime.rpc_pool import blocking

ModelList = Callable[[Callable[[str], ModelSettings | None]], tuple[ModelSettings, ...]]
"""Builds a new model list from the current settings by name (TF Serving's
HandleReloadConfigRequest keeps what its ``ModelConfig`` cannot say)."""


class Coordinator(Protocol):
    """Carries out admin changes: in one process directly; across workers, on every worker."""

    def start(self) -> None:
        """Begins following other processes' changes (after the server started)."""
        ...

    def stop(self) -> None:
        """Stops following them (before the server stops)."""
        ...

    def reload(self, manager: ModelManager, version: int, force: bool = False) -> ReloadOutcome:
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

    def reload(self, manager: ModelManager, version: int, force: bool = False) -> ReloadOutcome:
        """See ``ModelManager.reload``."""
        return manager.reload(version, force)

    def unload(self, manager: ModelManager) -> int:
        """See ``ModelManager.unload``."""
        return manager.unload()


class Admin:
    """Reload, unload and config changes by model name.

    Args:
        registry: the served models.
        gate: the data plane's gate (admin calls are refused at shutdown too).
        reloader: re-reads the config file or repository (None: the server has none).
        coordinator: applies Reload/Unload (default: in this process only).
        max_admin: admin calls handled at once.
        defaults: the flags' options for models a model list adds (None: built-in defaults).
        explicit: a reload first re-reads that model's part of the repository (Triton's
            explicit mode: a load picks up its config.pbtxt, or a model added since).
    """

    def __init__(
        self,
        registry: ModelRegistry,
        gate: CallGate,
        reloader: ConfigReloader | None = None,
        coordinator: Coordinator | None = None,
        *,
        max_admin: int = 4,
        defaults: ModelSettings | None = None,
        explicit: bool = False,
    ) -> None:
        self._registry = registry
        self._explicit = explicit and reloader is not None
        self._defaults = defaults
        """The flags' options for a model a model list adds (polling, batching, warm-up)."""
        self.gate = gate
        self.reloader = reloader
        self.coordinator: Coordinator = coordinator or LocalCoordinator()
        self._max_admin = max_admin
        self._slots = threading.BoundedSemaphore(max_admin)  # one per admin call running

    @contextmanager
    def _admitted(self) -> Iterator[None]:
        """Holds one of ``max_admin`` slots for an admin call, or refuses it at once. The call
        may wait on loads: its RPC thread steps out of the active ones meanwhile."""
        if not self._slots.acquire(blocking=False):
            raise ResourceExhausted(
                f"{self._max_admin} admin calls are already in progress (--max-admin-rpcs); "
                "concurrent reloads of one model share one rescan, so retry after a backoff"
            )
        try:
            with blocking():
                yield
        finally:
            self._slots.release()

    @gated
    def reload(self, model: str, version: int = 0, force: bool = False) -> ReloadOutcome:
        """Rescans now and serves the newest version the policy allows (``version`` 0), or
        pins ``version``; answers once it serves (or its canary starts), else with the error.
        ``force``: without gates or canary (a refused or rolled-back version too)."""
        with self._admitted():
            if not (self._explicit and model):
                return self.coordinator.reload(self._registry.get(model), version, force)
            assert self.reloader is not None
            self.reloader.reload_model(model)
            manager = self._registry.get(model)
            unloaded = manager.unloaded
            try:
                return self.coordinator.reload(manager, version, force)
            except SwapserveError:
                if unloaded and not manager.serving_version:  # as it was: listed, not serving
                    self.coordinator.unload(manager)  # (and not making the server unready)
                raise

    @gated
    def unload(self, model: str) -> int:
        """Stops serving ``model`` until the next reload; returns the version that served."""
        manager = self._registry.get(model)
        with self._admitted():
            return self.coordinator.unload(manager)

    @gated
    def reload_config(self, models: ModelList | None = None) -> ConfigChange:
        """Applies a new model list (TF Serving's HandleReloadConfigRequest), or re-reads the
        config file when ``models`` is None and the server has one; then every model rescans
        and the answer comes once they serve.

        Raises:
            FailedPrecondition: a model list while models are fixed (``--workers``).
            InvalidArgument: an invalid config file or model list.
        """
        with self._admitted():
            registry = self._registry
            change = ConfigChange()
            if models is not None:
                if registry.fixed_models:
                    raise FailedPrecondition(
                        "with --workers, change the config file and send SIGHUP to the server "
                        "(or send an empty config to rescan every model)"
                    )
                change = registry.apply(models(self._current_settings))
            elif self.reloader is not None:
                change = self.reloader.reload() or change
            for manager in registry:
                self.coordinator.reload(manager, 0)
            return change

    def _current_settings(self, name: str) -> ModelSettings | None:
        """A listed model's options: its own if served, else the flags' (so a model added by
        a model list batches and polls as every other model does)."""
        manager = self._registry.find(name)
        return manager.settings if manager is not None else self._defaults
