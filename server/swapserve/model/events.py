"""What the model core tells the outside world, as hooks: loads, swaps, unloads, model runs,
batches, storage errors and config reloads.

The core calls these methods and knows nothing of who listens. ``ModelEvents`` itself does
nothing, so a core built without observers (unit tests, the bench's ablated servers) runs
unchanged; ``swapserve.observability.metrics.Metrics`` overrides them to count and time. (MLServer
wires its metrics into the registry as load/unload hooks the same way.) The hooks run on the
thread that did the work -- ``ran`` and ``batched`` on the request or batch thread -- so they
must be quick and must not raise.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol


class Inflight(Protocol):
    """Anything that can say how many requests run on a model now (its serving map)."""

    @property
    def inflight(self) -> int: ...


class ModelEvents:
    """No-op hooks; an observer overrides the ones it wants."""

    def model_added(self, model: str, inflight: Inflight) -> None:
        """A model's manager was built; ``inflight`` reads its requests in progress."""

    def model_removed(self, model: str) -> None:
        """A config change removed the model (its series and statistics may go)."""

    def load_failed(self, model: str, version: int) -> None:
        """A version failed to load, validate or warm up."""

    def loaded(self, model: str, version: int, seconds: float, rss_added: int) -> None:
        """A version loaded and warmed up in ``seconds``, adding ``rss_added`` resident bytes."""

    def serving(self, model: str, version: int, previous: int) -> None:
        """``version`` now answers version-0 requests (0: none does); ``previous`` did."""

    def gate_checked(self, model: str, gate: str, passed: bool) -> None:
        """One gate judged a candidate version."""

    def rollout(self, model: str, phase: str, version: int, canary_percent: float) -> None:
        """The model's rollout phase changed (``outcomes.PHASES``); ``version`` is the version
        it is about, ``canary_percent`` its share while a canary runs (else 0)."""

    def unloaded(self, model: str, version: int) -> None:
        """A retired version finished its requests and was released."""

    def ran(self, model: str, version: int, seconds: float) -> None:
        """One model run of ``version`` took ``seconds`` (a batch counts once)."""

    def batch_waited(self, model: str, version: int, seconds: float) -> None:
        """A request waited ``seconds`` for its batch to start (0 when it ran at once)."""

    def batch_ran(self, model: str, rows: int) -> None:
        """A batch of ``rows`` (after padding) ran."""

    def storage_errors(self, model: str, count: int) -> None:
        """Listing or downloading a remote export root failed ``count`` times."""

    def config_read(self, outcome: str, ok: bool) -> None:
        """The config file or repository was read: ``applied``, ``failed`` or ``unchanged``;
        ``ok`` says whether what is on disk now is served."""

    def config_problems(self, problems: Mapping[str, str]) -> None:
        """The models whose own config (a repository's ``config.pbtxt``) is invalid now, with
        the error: each is left out or kept at its old settings while the others apply."""


NO_EVENTS = ModelEvents()
"""The shared do-nothing observer."""
