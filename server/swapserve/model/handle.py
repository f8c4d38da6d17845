"""``Handle``: one loaded version as the request path sees it -- its batcher, its in-flight
count (kept by the serving map), and during a canary its watch and fallback.

``run`` is the hot path: validate, run (directly or batched), note the call, offer the request
to the model's gate sample. During a canary a version carries a ``Watch`` and takes the slower
``_run_watched``, which times every run, counts failures and NaN answers, and hands a request
the canary failed to the previous version (``fallback``).
"""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

from swapserve.errors import SwapserveError
from swapserve.model.batching import Batcher, batchable
from swapserve.model.canary import Watch
from swapserve.model.events import ModelEvents
from swapserve.model.gates import count_nonfinite
from swapserve.model.outcomes import Prediction
from swapserve.model.sample import LiveSample
from swapserve.model.signature import SignatureSpec
from swapserve.observability import calls

if TYPE_CHECKING:  # the request path never imports TensorFlow through this module
    from swapserve.model.loaded_version import LoadedVersion

_NOT_THE_MODELS = frozenset({"RESOURCE_EXHAUSTED", "UNAVAILABLE", "CANCELLED", "DEADLINE_EXCEEDED"})
"""Statuses of a run that say nothing about the version (load, shutdown, the caller)."""

Fallback = Callable[["Handle", str, Mapping[str, np.ndarray], Sequence[str]], "Prediction | None"]
"""(the canary's handle, signature, inputs, output filter) -> the previous version's answer, or
None when no other version serves (the canary's own answer or error stands)."""


class Handle:
    """A loaded version, its batcher, and its in-flight count.

    Args:
        loaded: the version.
        batcher: its batcher (None: batching off).
        model: the model's name (metric labels).
        events: told of every model run.
    """

    def __init__(
        self,
        loaded: LoadedVersion,
        batcher: Batcher | None,
        model: str,
        events: ModelEvents,
        sample: LiveSample | None = None,
    ) -> None:
        self.loaded = loaded  # immutable
        self.batcher = batcher  # immutable
        self.version: int = loaded.version  # immutable
        self._model = model
        self._events = events
        self._sample = sample  # immutable: the model's gate sample, offered each answer
        self.inflight = 0  # guarded by ServingMap._lock
        self.retired = False  # guarded by ServingMap._lock
        self.base: Handle = self  # immutable: the handle counted in and out (see ``diverted``)
        self.watch: Watch | None = None
        """Set (under ServingMap._lock) on the served version while a canary compares it with
        the canary; read unlocked, once per request. A canary's own watch lives on its view."""
        self.fallback: Fallback | None = None
        """On a canary's view only: answers a request the canary failed (or answered with NaN)
        on the previous version instead."""
        self.idle = threading.Event()
        """Set once retired with no request in flight: the reaper may release it."""

    def diverted(self, watch: Watch, fallback: Fallback) -> Handle:
        """This version as the requests diverted to it during a canary see it: watched by
        ``watch``, falling back with ``fallback``, both fixed for the view's life. A request
        holds the view it acquired, so a rollback between its acquire and its run cannot
        leave it running the canary unwatched (and answering the canary's NaN). The view is
        counted in and out on this handle (``base``)."""
        view = copy.copy(self)
        view.base, view.watch, view.fallback = self, watch, fallback
        return view

    def run(
        self, signature: str, inputs: Mapping[str, np.ndarray], output_filter: Sequence[str] = ()
    ) -> Prediction:
        """Runs one request (acquired), batched when batching is on and the request allows."""
        loaded = self.loaded
        record = calls.current()  # ``note_version`` inline: this is the hot path
        if record is not None:
            record.version = self.version
        sig, wanted = loaded.prepare(signature, inputs, output_filter)
        watch = self.watch
        if watch is not None:
            return self._run_watched(watch, sig, wanted, inputs, output_filter)
        outputs, queued, ran = self._execute(sig, wanted, inputs)
        calls.note_run(
            sig.name, inputs, outputs, output_filter=output_filter, run_seconds=ran,
            queue_seconds=queued,
        )  # fmt: skip
        if self._sample is not None:
            self._sample.offer(sig.name, inputs, output_filter)
        return Prediction(self.version, sig.name, outputs)

    def _execute(
        self, sig: SignatureSpec, wanted: tuple[str, ...], inputs: Mapping[str, np.ndarray]
    ) -> tuple[dict[str, np.ndarray], float, float]:
        """(outputs, seconds queued, seconds run) of validated inputs."""
        if self.batcher is not None and batchable(sig, inputs):
            return self.batcher.submit_timed(sig, wanted, inputs)
        start = time.perf_counter()
        outputs = self.loaded.execute(sig, wanted, inputs)
        ran = time.perf_counter() - start
        self._events.ran(self._model, self.version, ran)
        return outputs, 0.0, ran

    def _run_watched(
        self,
        watch: Watch,
        sig: SignatureSpec,
        wanted: tuple[str, ...],
        inputs: Mapping[str, np.ndarray],
        output_filter: Sequence[str],
    ) -> Prediction:
        """A run during a canary: noted on the watch; the canary's failures and non-finite
        answers are answered by the previous version (``fallback``) instead."""
        start = time.perf_counter()
        try:
            outputs, queued, ran = self._execute(sig, wanted, inputs)
        except SwapserveError as err:
            if err.status in _NOT_THE_MODELS:
                raise
            watch.note(time.perf_counter() - start, error=True)
            if self.fallback is not None:
                answer = self.fallback(self, sig.name, inputs, output_filter)
                if answer is not None:
                    return answer
            raise
        nonfinite = bool(count_nonfinite(outputs))
        watch.note(ran, nonfinite=nonfinite)
        if nonfinite and self.fallback is not None:
            answer = self.fallback(self, sig.name, inputs, output_filter)
            if answer is not None:
                return answer
        calls.note_run(
            sig.name, inputs, outputs, output_filter=output_filter, run_seconds=ran,
            queue_seconds=queued,
        )  # fmt: skip
        if self._sample is not None and not nonfinite:
            self._sample.offer(sig.name, inputs, output_filter)
        return Prediction(self.version, sig.name, outputs)

    def run_examples(self, signature: str, serialized: np.ndarray, method: str) -> Prediction:
        """Runs a classify or regress signature on serialized tf.Example protos."""
        calls.note_version(self.version)
        start = time.perf_counter()
        name, outputs = self.loaded.run_examples(signature, serialized, method)
        ran = time.perf_counter() - start
        self._events.ran(self._model, self.version, ran)
        calls.note_run(name, {}, outputs, run_seconds=ran, rows=int(serialized.size))
        return Prediction(self.version, name, outputs)
