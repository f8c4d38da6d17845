"""The serving map of one model: the loaded versions, the one answering requests without a
version, the labels -- the only part of the model core on the request path.

Request threads take ``_lock`` just long enough to look a version up and count themselves in
(``acquire``) and out (``release``); TensorFlow runs with no lock held. The load path swaps the
served version by replacing one reference under the same lock (``commit``), and a version taken
out of service is released on a reaper thread once its in-flight requests are done -- never on a
request thread, and never while a request still runs on it (TF Serving's ``BasicManager`` serving
map, with its ``GUARDED_BY`` discipline written as comments here).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

from swapserve.model.batching import Batcher, batchable
from swapserve.model.events import ModelEvents
from swapserve.model.outcomes import Prediction
from swapserve.observability import calls

if TYPE_CHECKING:  # the request path never imports TensorFlow through this module
    from swapserve.model.loaded_version import LoadedVersion

log = logging.getLogger(__name__)


class Handle:
    """A loaded version, its batcher, and its in-flight count.

    Args:
        loaded: the version.
        batcher: its batcher (None: batching off).
        model: the model's name (metric labels).
        events: told of every model run.
    """

    def __init__(
        self, loaded: LoadedVersion, batcher: Batcher | None, model: str, events: ModelEvents
    ) -> None:
        self.loaded = loaded  # immutable
        self.batcher = batcher  # immutable
        self.version: int = loaded.version  # immutable
        self._model = model
        self._events = events
        self.inflight = 0  # guarded by ServingMap._lock
        self.retired = False  # guarded by ServingMap._lock
        self.idle = threading.Event()
        """Set once retired with no request in flight: the reaper may release it."""

    def run(
        self, signature: str, inputs: Mapping[str, np.ndarray], output_filter: Sequence[str] = ()
    ) -> Prediction:
        """Runs one request (acquired), batched when batching is on and the request allows."""
        loaded = self.loaded
        record = calls.current()  # ``note_version`` inline: this is the hot path
        if record is not None:
            record.version = self.version
        sig, wanted = loaded.prepare(signature, inputs, output_filter)
        if self.batcher is not None and batchable(sig, inputs):
            outputs, queued, ran = self.batcher.submit_timed(sig, wanted, inputs)
        else:
            start = time.perf_counter()
            outputs = loaded.execute(sig, wanted, inputs)
            queued, ran = 0.0, time.perf_counter() - start
            self._events.ran(self._model, self.version, ran)
        calls.note_run(
            sig.name, inputs, outputs, output_filter=output_filter, run_seconds=ran,
            queue_seconds=queued,
        )  # fmt: skip
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


class ServingMap:
    """Which loaded version answers what; thread-safe.

    Args:
        name: the model's name (thread names, logs).
        labels: version labels at start.
        on_retired: called with each version taken out of service, before its reaper starts.
        on_released: called on the reaper thread after a retired version was closed.
    """

    def __init__(
        self,
        name: str,
        labels: Mapping[str, int],
        on_retired: Callable[[int], None],
        on_released: Callable[[int], None],
    ) -> None:
        self._name = name
        self._on_retired = on_retired
        self._on_released = on_released
        self._lock = threading.Lock()  # the request path's only lock; guards the fields below
        self._handles: dict[int, Handle] = {}  # guarded by _lock: every loaded version
        self._served: Handle | None = None  # guarded by _lock: answers version-0 requests
        self._labels: dict[str, int] = dict(labels)  # guarded by _lock
        self._pinned = 0  # guarded by _lock: the version Reload pinned (0: the policy decides)
        self._stopped = ""  # guarded by _lock: "closed" or "unloaded" once retire_all ran
        self._reapers: list[threading.Thread] = []  # guarded by _lock
        self._inflight = 0  # guarded by _lock: requests on any version now

    # ---- request path -------------------------------------------------------------------------

    def acquire(self, version: int, label: str = "") -> Handle | None:
        """The handle serving ``version`` (0: the served version) or ``label``, counted in;
        None if there is none. Every acquired handle must be ``release``d."""
        with self._lock:
            if label:
                version = self._labels.get(label, -1)
            handle = self._handles.get(version) if version else self._served
            if handle is not None:
                handle.inflight += 1
                self._inflight += 1
            return handle

    def release(self, handle: Handle) -> None:
        """Counts a request out; the last one out of a retired version lets it be released."""
        with self._lock:
            handle.inflight -= 1
            self._inflight -= 1
            if handle.retired and handle.inflight == 0:
                handle.idle.set()

    # ---- reading ------------------------------------------------------------------------------

    @property
    def inflight(self) -> int:
        """Requests running on any version now (the ``swapserve_inflight_requests`` gauge, read
        when scraped rather than counted on the request path)."""
        with self._lock:
            return self._inflight

    @property
    def served_version(self) -> int:
        """The version answering version-0 requests; 0 if none."""
        with self._lock:
            return self._served.version if self._served else 0

    @property
    def loaded_versions(self) -> tuple[int, ...]:
        """Every loaded version, newest first."""
        with self._lock:
            return tuple(sorted(self._handles, reverse=True))

    @property
    def labels(self) -> dict[str, int]:
        """A copy of the labels."""
        with self._lock:
            return dict(self._labels)

    @property
    def pinned(self) -> int:
        """The pinned version (0: none)."""
        with self._lock:
            return self._pinned

    @property
    def stopped(self) -> str:
        """ "closed" or "unloaded" once every version was retired for good; "" otherwise."""
        with self._lock:
            return self._stopped

    def snapshot(self) -> tuple[int, int, dict[str, int]]:
        """(served version, pinned version, labels), read together."""
        with self._lock:
            served = self._served.version if self._served else 0
            return served, self._pinned, dict(self._labels)

    # ---- load path ----------------------------------------------------------------------------

    def set_labels(self, labels: Mapping[str, int]) -> None:
        """Replaces the labels (a config reload)."""
        with self._lock:
            self._labels = dict(labels)

    def set_pinned(self, version: int) -> None:
        """Pins ``version`` (0: unpins)."""
        with self._lock:
            self._pinned = version

    def resume(self) -> None:
        """Lets an unloaded model serve again (Reload after RepositoryModelUnload)."""
        with self._lock:
            if self._stopped == "unloaded":
                self._stopped = ""

    def add(self, handle: Handle) -> None:
        """A newly loaded version, next to the others; it does not serve until ``commit``."""
        with self._lock:
            self._handles[handle.version] = handle

    def commit(self, default: int, keep: Iterable[int]) -> tuple[int, list[int]]:
        """Makes ``default`` serve version-0 requests and retires every loaded version not in
        ``keep``: one reference swap under the lock; releases happen on reaper threads.

        Returns:
            The version that served before (0: none) and the versions retired.
        """
        keep = set(keep)
        with self._lock:
            previous = self._served.version if self._served else 0
            self._served = self._handles[default]
            retired = [h for v, h in self._handles.items() if v not in keep]
            for handle in retired:
                self._retire_locked(handle)
        self._reap_all(retired)
        return previous, [h.version for h in retired]

    def retire_all(self, reason: str) -> tuple[int, list[int]]:
        """Takes every version out of service for good (``reason``: "closed" or "unloaded").

        Returns:
            The version that served before (0: none) and the versions retired.
        """
        with self._lock:
            if self._stopped != "closed":
                self._stopped = reason
            previous = self._served.version if self._served else 0
            retired = list(self._handles.values())
            for handle in retired:
                self._retire_locked(handle)
        self._reap_all(retired)
        return previous, [h.version for h in retired]

    def _retire_locked(self, handle: Handle) -> None:
        del self._handles[handle.version]
        if self._served is handle:
            self._served = None
        handle.retired = True
        if handle.inflight == 0:
            handle.idle.set()

    def _reap_all(self, retired: list[Handle]) -> None:
        for handle in retired:
            self._on_retired(handle.version)
        for handle in retired:
            self._start_reaper(handle)

    def _start_reaper(self, handle: Handle) -> None:
        thread = threading.Thread(
            target=self._reap,
            args=(handle,),
            name=f"unload-{self._name}-{handle.version}",
            daemon=True,
        )
        with self._lock:
            self._reapers = [t for t in self._reapers if t.is_alive()]
            self._reapers.append(thread)
        thread.start()

    def _reap(self, handle: Handle) -> None:
        handle.idle.wait()
        if handle.batcher is not None:
            handle.batcher.stop()
        handle.loaded.close()
        try:
            self._on_released(handle.version)
        except Exception:
            log.exception("model %s: after releasing version %d", self._name, handle.version)

    def wait_unloaded(self, timeout: float | None = None) -> bool:
        """Waits for retired versions to be released; True if all were."""
        with self._lock:
            reapers = list(self._reapers)
        deadline = None if timeout is None else time.monotonic() + timeout
        for thread in reapers:
            thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        return not any(t.is_alive() for t in reapers)
