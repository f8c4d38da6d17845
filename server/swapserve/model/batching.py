"""Dynamic batching: concurrent requests run as one model call, each caller gets its rows.

One ``Batcher`` belongs to one loaded version, so a batch always runs on exactly one version and
every reply can say which. Requests are grouped by batch key -- signature, requested outputs,
and each input's dtype and non-batch dimensions. At most ``num_batch_threads`` model runs are in
progress at once. When an open batch closes depends on the mode:

- ``eager`` (the default): a request that finds a free run slot and nothing queued runs at once,
  in its own thread, as a batch of one -- no wait, no hand-off, so under light load latency is
  the unbatched path's. Requests arriving while every slot is busy collect in an open batch,
  which runs as soon as a slot frees (or when it is full): under load, batches fill by
  themselves, as large as the arrivals during one run. No request ever waits for company.
- ``timeout`` (TF Serving's batcher): an open batch closes when it is full (``max_batch_size``
  rows, or the largest preferred size) or its first request has waited
  ``batch_timeout_micros``, even when nothing else is coming.

At most ``max_enqueued_batches`` batches may be open or waiting; past that a request is refused
at once with RESOURCE_EXHAUSTED, so an overload never turns into unbounded memory or latency.
Requests are validated before they are queued, so one bad request never fails a batch; an error
raised by the model run itself fails every request of that batch (as in TF Serving).
"""

from __future__ import annotations

import bisect
import collections
import dataclasses
import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from swapserve.config.model_settings import BatchingSettings
from swapserve.errors import (
    Internal,
    InvalidArgument,
    ResourceExhausted,
    SwapserveError,
    Unavailable,
)
from swapserve.model.events import NO_EVENTS, ModelEvents
from swapserve.model.signature import SignatureSpec
from swapserve.runtime.rpc_pool import blocking

if TYPE_CHECKING:  # a batcher only calls a loaded version: no TensorFlow import here
    from swapserve.model.loaded_version import LoadedVersion

log = logging.getLogger(__name__)

_Key = tuple[str, tuple[str, ...], tuple[tuple[str, str, tuple[int, ...]], ...]]


@dataclass
class _Task:
    inputs: Mapping[str, np.ndarray]
    rows: int
    queued: float = field(default_factory=time.perf_counter)
    done: threading.Event = field(default_factory=threading.Event)
    outputs: dict[str, np.ndarray] | None = None
    error: BaseException | None = None
    queue_seconds: float = 0.0
    run_seconds: float = 0.0


@dataclass
class BatcherCounters:
    """What a batcher did, for tests and benchmarks (a snapshot)."""

    immediate: int = 0
    """Requests that found a free slot and nothing queued, and ran at once (eager mode)."""
    batches: int = 0
    """Batches run by the batch threads."""
    batched_requests: int = 0
    """Requests in those batches."""
    pending_requests: int = 0
    """Requests waiting in open or closed batches now."""


@dataclass
class _Batch:
    key: _Key
    sig: SignatureSpec
    wanted: tuple[str, ...]
    deadline: float
    tasks: list[_Task] = field(default_factory=list)
    rows: int = 0


def batchable(sig: SignatureSpec, inputs: Mapping[str, np.ndarray]) -> bool:
    """True when the request can join a batch: every input has a variable dim 0 and all
    inputs agree on it (others run alone, unchanged)."""
    if not inputs:
        return False
    rows = {a.shape[0] if a.ndim else -1 for a in inputs.values()}
    if len(rows) != 1 or -1 in rows:
        return False
    return all(
        spec.shape is None or (len(spec.shape) > 0 and spec.shape[0] == -1)
        for spec in sig.inputs.values()
    )


class Batcher:
    """Batches requests for one loaded version."""

    def __init__(
        self,
        loaded: LoadedVersion,
        settings: BatchingSettings,
        model: str,
        events: ModelEvents = NO_EVENTS,
    ) -> None:
        self._loaded = loaded
        self._model = model
        self._events = events
        self._settings = settings
        self._eager = settings.mode == "eager"
        # Eager batches never wait for company: only for a free slot.
        self._timeout = float("inf") if self._eager else settings.batch_timeout_micros / 1e6
        # A batch this full runs at once (Triton's preferred sizes; else only when full).
        self._close_at = max(settings.preferred_batch_sizes, default=settings.max_batch_size)
        self._slots = settings.num_batch_threads
        # Guards every field below; batch threads wait on it for a batch and a free slot.
        self._cv = threading.Condition()
        self._open: dict[_Key, _Batch] = {}
        self._ready: collections.deque[_Batch] = collections.deque()
        self._batches = 0  # open + ready, bounded by max_enqueued_batches
        self._busy = 0  # model runs in progress (batch threads, and callers running at once)
        self._stopping = False
        self._counters = BatcherCounters()
        self._threads = [
            threading.Thread(
                target=self._work, name=f"batch-{model}-{loaded.version}-{i}", daemon=True
            )
            for i in range(settings.num_batch_threads)
        ]
        for t in self._threads:
            t.start()

    def submit(
        self, sig: SignatureSpec, wanted: tuple[str, ...], inputs: Mapping[str, np.ndarray]
    ) -> dict[str, np.ndarray]:
        """Queues a validated, ``batchable`` request and waits for its rows of the result."""
        return self.submit_timed(sig, wanted, inputs)[0]

    def submit_timed(
        self, sig: SignatureSpec, wanted: tuple[str, ...], inputs: Mapping[str, np.ndarray]
    ) -> tuple[dict[str, np.ndarray], float, float]:
        """``submit``, also returning the seconds the request queued and its batch ran."""
        rows = next(iter(inputs.values())).shape[0]
        limit = self._settings.max_batch_size
        if rows > limit:
            raise InvalidArgument(
                f"request has {rows} rows but this model batches at most {limit} "
                "(max_batch_size); split it into smaller requests"
            )
        key: _Key = (
            sig.name,
            wanted,
            tuple((n, a.dtype.str, a.shape[1:]) for n, a in sorted(inputs.items())),
        )
        with self._cv:
            if self._stopping:
                raise Unavailable("this model version is being unloaded; retry")
            alone = self._eager and self._busy < self._slots and not self._open and not self._ready
            if alone:
                self._busy += 1
                self._counters.immediate += 1
            else:
                task = _Task(inputs, rows)
                self._enqueue(key, sig, wanted, task)
        if alone:
            try:
                if not self._settings.allowed_batch_sizes:  # nothing to pad: the plain call
                    return self._run_alone(sig, wanted, inputs, rows)
                task = _Task(inputs, rows)  # padded: the batch path, in the caller's thread
                self._run(_Batch(key, sig, wanted, 0.0, [task], rows))
            finally:
                with self._cv:
                    self._busy -= 1
                    if self._open or self._ready:  # else waking a batch thread costs latency
                        self._cv.notify()
        if not task.done.is_set():
            with blocking():  # other calls go on while this one waits for its batch
                task.done.wait()
        if task.error is not None:
            raise task.error
        assert task.outputs is not None
        return task.outputs, task.queue_seconds, task.run_seconds

    def _run_alone(
        self,
        sig: SignatureSpec,
        wanted: tuple[str, ...],
        inputs: Mapping[str, np.ndarray],
        rows: int,
    ) -> tuple[dict[str, np.ndarray], float, float]:
        """An eager request with a free slot: the model call in the caller's thread, with the
        events a batch of one reports (no queue time)."""
        events, model = self._events, self._model
        started = time.perf_counter()
        outputs = self._loaded.execute(sig, wanted, inputs)
        ran = time.perf_counter() - started
        events.ran(model, self._loaded.version, ran)
        events.batch_waited(model, self._loaded.version, 0.0)
        events.batch_ran(model, rows)
        return outputs, 0.0, ran

    def counters(self) -> BatcherCounters:
        """A snapshot of what this batcher did."""
        with self._cv:
            pending = sum(len(b.tasks) for b in (*self._open.values(), *self._ready))
            return dataclasses.replace(self._counters, pending_requests=pending)

    def _enqueue(self, key: _Key, sig: SignatureSpec, wanted: tuple[str, ...], task: _Task) -> None:
        """Adds ``task`` to the open batch of ``key`` (opening one); caller holds the lock.

        Raises:
            ResourceExhausted: ``max_enqueued_batches`` batches are open or waiting.
        """
        limit, rows = self._settings.max_batch_size, task.rows
        batch = self._open.get(key)
        # A batch thread is woken only when a batch closes or opens (its deadline is new);
        # a request joining an open batch changes nothing a waiting thread needs to see.
        wake = False
        if batch is not None and batch.rows + rows > limit:
            self._close(batch)
            batch, wake = None, True
        if batch is None:
            if self._batches >= self._settings.max_enqueued_batches:
                if wake:
                    self._cv.notify()
                raise ResourceExhausted(
                    f"batch queue is full ({self._settings.max_enqueued_batches} batches "
                    "waiting); retry later"
                )
            batch = _Batch(key, sig, wanted, time.monotonic() + self._timeout)
            self._open[key] = batch
            self._batches += 1
            wake = True
        batch.tasks.append(task)
        batch.rows += rows
        if batch.rows >= self._close_at or self._timeout <= 0:
            self._close(batch)
            wake = True
        if wake:
            self._cv.notify()

    def stop(self) -> None:
        """Runs what is queued, then stops the threads (called once the version is idle)."""
        with self._cv:
            self._stopping = True
            self._cv.notify_all()
        for t in self._threads:
            t.join()

    def _close(self, batch: _Batch) -> None:
        del self._open[batch.key]
        self._ready.append(batch)

    def _next(self) -> _Batch | None:
        """The next batch to run, once a slot is free; None when stopped and drained."""
        with self._cv:
            while True:
                now = time.monotonic()
                for batch in [b for b in self._open.values() if b.deadline <= now]:
                    self._close(batch)
                if self._busy < self._slots:
                    if not self._ready and self._open and (self._eager or self._stopping):
                        # Eager: what collected during the runs goes now (the oldest first).
                        self._close(next(iter(self._open.values())))
                    if self._ready:
                        self._batches -= 1
                        self._busy += 1
                        batch = self._ready.popleft()
                        self._counters.batches += 1
                        self._counters.batched_requests += len(batch.tasks)
                        return batch
                if self._stopping and not self._open and not self._ready:
                    return None
                wait = min((b.deadline for b in self._open.values()), default=float("inf"))
                self._cv.wait(None if wait == float("inf") else max(0.0, wait - now))

    def _work(self) -> None:
        while (batch := self._next()) is not None:
            try:
                self._run(batch)
            finally:
                with self._cv:
                    self._busy -= 1
                    if self._open or self._ready:
                        self._cv.notify()

    def _run(self, batch: _Batch) -> None:
        tasks = batch.tasks
        events, model, version = self._events, self._model, self._loaded.version
        started = time.perf_counter()
        for task in tasks:
            task.queue_seconds = started - task.queued
            events.batch_waited(model, version, task.queue_seconds)
        try:
            inputs = self._merge(batch)
            outputs = self._loaded.execute(batch.sig, batch.wanted, inputs)
            padded = next(iter(inputs.values())).shape[0]
            ran = time.perf_counter() - started
            events.ran(model, version, ran)
            events.batch_ran(model, padded)
            offset = 0
            for task in tasks:
                task.outputs = {}
                for name, value in outputs.items():
                    if value.ndim == 0 or value.shape[0] != padded:
                        raise Internal(
                            f"output '{name}' of signature '{batch.sig.name}' has shape "
                            f"{list(value.shape)}, not one row per input row; this model cannot "
                            "be batched (disable batching for it)"
                        )
                    task.outputs[name] = value[offset : offset + task.rows]
                task.run_seconds = ran
                offset += task.rows
        except SwapserveError as err:
            for task in tasks:
                task.error = err
        except Exception:
            log.exception("batch of %d requests failed", len(tasks))
            for task in tasks:
                task.error = Internal("batched model run failed")
        finally:
            for task in tasks:
                task.done.set()

    def _merge(self, batch: _Batch) -> dict[str, np.ndarray]:
        tasks = batch.tasks
        names = list(tasks[0].inputs)
        if len(tasks) == 1:
            merged = dict(tasks[0].inputs)
        else:
            merged = {n: np.concatenate([t.inputs[n] for t in tasks]) for n in names}
        sizes = self._settings.allowed_batch_sizes
        if sizes:
            target = sizes[bisect.bisect_left(sizes, batch.rows)]
            if target > batch.rows:
                # Pad with copies of the last row: real values, so no op sees unusual data.
                merged = {
                    n: np.concatenate([a, np.repeat(a[-1:], target - batch.rows, axis=0)])
                    for n, a in merged.items()
                }
        return merged
