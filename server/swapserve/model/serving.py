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
import random
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence

import numpy as np

from swapserve.model.canary import Watch, diverted
from swapserve.model.handle import Fallback, Handle
from swapserve.model.outcomes import Prediction
from swapserve.observability import calls
from swapserve.runtime.heap import Trimmer

__all__ = ["Fallback", "Handle", "ServingMap"]

_give_back = Trimmer(every=0.0)
"""``malloc_trim`` after a version is released: glibc keeps freed tensors mapped otherwise, and
with ``--workers`` the next worker's load would come on top of memory nobody uses."""

log = logging.getLogger(__name__)


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
        self._canary: Handle | None = None  # guarded by _lock: the canary's view (``diverted``),
        # which answers a share of the version-0 predictions
        self._share = 0.0  # guarded by _lock: the canary's share of version-0 requests, 0..1

    # ---- request path -------------------------------------------------------------------------

    def acquire(self, version: int, label: str = "", divert: bool = False) -> Handle | None:
        """The handle serving ``version`` (0: the served version) or ``label``, counted in;
        None if there is none. Every acquired handle must be ``release``d. ``divert``: a
        version-0 request may go to the canary (predictions do; metadata does not)."""
        with self._lock:
            if label:
                version = self._labels.get(label, -1)
            if version:
                handle = self._handles.get(version)
            else:
                handle = self._served
                canary = self._canary
                if canary is not None and divert:
                    key = calls.routing_key(calls.current())
                    if diverted(self._share, key, random.random()):  # noqa: S311 (not secret)
                        handle = canary
            if handle is not None:
                handle.base.inflight += 1
                self._inflight += 1
            return handle

    def release(self, handle: Handle) -> None:
        """Counts a request out; the last one out of a retired version lets it be released."""
        handle = handle.base  # a canary's view is counted on its version's handle
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

    @property
    def canary(self) -> Handle | None:
        """The canary's handle, if a canary runs."""
        with self._lock:
            return self._canary

    # ---- canary -------------------------------------------------------------------------------

    def start_canary(self, version: int, share: float, fallback: Fallback) -> tuple[Watch, Watch]:
        """Lets loaded ``version`` answer ``share`` (0..1) of the version-0 predictions, the
        served version the rest; both get a fresh watch.

        Returns:
            The canary's watch and the served version's.
        """
        with self._lock:
            canary, served = self._handles[version], self._served
            assert served is not None and served is not canary
            self._clear_canary_locked()
            watched, served.watch = Watch(), Watch()
            self._canary, self._share = canary.diverted(watched, fallback), share
            return watched, served.watch

    def promote(self) -> tuple[int, int]:
        """The canary answers every version-0 request from now on.

        Returns:
            (the canary's version, the version that served before); (0, 0) with no canary.
        """
        with self._lock:
            canary, served = self._canary, self._served
            if canary is None:
                return 0, 0
            self._clear_canary_locked()
            self._served = canary.base
            return canary.version, served.version if served else 0

    def end_canary(self) -> int:
        """Stops diverting to the canary (it stays loaded until committed away); its version,
        or 0."""
        with self._lock:
            version = self._canary.version if self._canary else 0
            self._clear_canary_locked()
            return version

    def _clear_canary_locked(self) -> None:
        for handle in self._handles.values():  # the served version and the canary among them
            handle.watch = handle.fallback = None
        self._canary, self._share = None, 0.0

    def run_stable(
        self,
        failed: Handle,
        signature: str,
        inputs: Mapping[str, np.ndarray],
        output_filter: Sequence[str],
    ) -> Prediction | None:
        """The served version's answer to a request the canary ``failed`` (a ``Fallback``);
        None if the canary is the served version by now (promoted) or nothing else serves."""
        handle = self.acquire(0)
        if handle is None:
            return None
        try:
            if handle is failed.base:
                return None
            return handle.run(signature, inputs, output_filter)
        finally:
            self.release(handle)

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
            if self._canary is not None and (
                self._canary.version not in keep or self._canary.base is self._served
            ):
                self._clear_canary_locked()
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
            self._clear_canary_locked()
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
        thread.start()  # before it is listed: wait_unloaded never joins an unstarted thread
        with self._lock:
            self._reapers = [t for t in self._reapers if t.is_alive()]
            self._reapers.append(thread)

    def _reap(self, handle: Handle) -> None:
        handle.idle.wait()
        if handle.batcher is not None:
            handle.batcher.stop()
        handle.loaded.close()
        _give_back()  # the version's freed heap to the OS: the next swap (or worker) needs it
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
