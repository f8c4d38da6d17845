"""What one call did: the transport opens a ``CallRecord``, the model core fills in what only it
knows (the version that answered, the signature, rows, queue and model time), and the transport
hands the finished record to the observer (metrics, statistics, access log, request log).

The record travels with the request thread in a context variable, so no data-plane signature
changes for it and a call outside any transport (warm-up, tests) records nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar, Token
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from swapserve.config.rollout_settings import ROUTING_KEY

OK_CODES = ("OK", "200")
"""The codes of a successful call: gRPC ``OK``, HTTP 200."""


@dataclass(slots=True)
class CallRecord:
    """One RPC or HTTP call, end to end."""

    protocol: str
    """``swapserve``, ``tfserving``, ``kserve_v2``, ``tfserving_rest``, ``kserve_v2_rest``."""
    method: str
    peer: str = ""
    model: str = ""
    """The model the request names (as sent; the observer labels metrics only with known ones)."""
    version: int = 0
    """The version that answered (0: none did)."""
    signature: str = ""
    rows: int = 0
    """Rows (dimension 0 of the inputs) the model ran for this call."""
    queue_seconds: float = 0.0
    """Time waiting for a batch to start (0 when not batched)."""
    run_seconds: float = 0.0
    """Time in the model run that computed this call (the whole batch's run when batched)."""
    code: str = "OK"
    """gRPC status code name, or the HTTP status as text."""
    grpc_code: str = ""
    """Over HTTP, the gRPC code name the HTTP status was mapped from ("" over gRPC)."""
    seconds: float = 0.0
    """Wall time from the transport receiving the call to its answer."""
    trace_id: str = ""
    inputs: Mapping[str, np.ndarray] | None = None
    """A prediction's inputs (kept for the request log; never logged as text)."""
    output_filter: Sequence[str] = ()
    outputs: Mapping[str, np.ndarray] | None = None
    started: float = field(default_factory=time.perf_counter)
    metadata: Any = None
    """Where the caller's headers are: HTTP's lower-cased header mapping, or gRPC's
    ``invocation_metadata`` method (called only when asked: ``routing_key``)."""

    @property
    def ok(self) -> bool:
        """It was answered successfully (gRPC ``OK`` or HTTP 200)."""
        return self.code in OK_CODES

    def finish(self, code: str) -> None:
        """Sets the outcome and the elapsed time."""
        self.code = code
        self.seconds = time.perf_counter() - self.started


def routing_key(record: CallRecord | None) -> str:
    """The call's ``swapserve-routing-key`` header or metadata value ("" without one): read only
    while a canary splits traffic."""
    source = record.metadata if record is not None else None
    if source is None:
        return ""
    if isinstance(source, Mapping):
        value = source.get(ROUTING_KEY, "")
        return value if isinstance(value, str) else ""
    for key, value in source() or ():
        if key == ROUTING_KEY and isinstance(value, str):
            return value
    return ""


_CURRENT: ContextVar[CallRecord | None] = ContextVar("swapserve_call", default=None)


current: Callable[[], CallRecord | None] = _CURRENT.get
"""The record of the call this thread is serving, if any."""

bind: Callable[[CallRecord], Token[CallRecord | None]] = _CURRENT.set
"""Makes a record the current call until ``unbind(token)``: the per-request form of
``recording`` (the context variable's own methods: no Python frame on the request path)."""

unbind: Callable[[Token[CallRecord | None]], None] = _CURRENT.reset
"""Ends what ``bind`` began."""


@contextmanager
def recording(record: CallRecord) -> Iterator[CallRecord]:
    """Makes ``record`` the current call for the duration of the block."""
    token = bind(record)
    try:
        yield record
    finally:
        unbind(token)


def note_version(version: int) -> None:
    """The version taking the current call (so a failure is counted against it)."""
    record = _CURRENT.get()
    if record is not None:
        record.version = version


def note_run(
    signature: str,
    inputs: Mapping[str, np.ndarray],
    outputs: Mapping[str, np.ndarray],
    *,
    output_filter: Sequence[str] = (),
    run_seconds: float,
    queue_seconds: float = 0.0,
    rows: int | None = None,
) -> None:
    """Records on the current call what the model run did for it (no-op outside a call).
    ``inputs`` are kept for the request log only when they are a prediction's named tensors
    (``rows`` given: tf.Examples, not logged)."""
    record = _CURRENT.get()
    if record is None:
        return
    record.signature = signature
    if rows is None:
        first = next(iter(inputs.values()), None)
        rows = int(first.shape[0]) if first is not None and first.ndim else 1
        record.inputs, record.output_filter, record.outputs = inputs, output_filter, outputs
    record.rows = rows
    record.run_seconds, record.queue_seconds = run_seconds, queue_seconds
