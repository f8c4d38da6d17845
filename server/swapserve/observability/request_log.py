"""Request logging for replay (``--request-log DIR``): sampled predictions written as TF Serving
``PredictionLog`` records in TFRecord files -- the format of TF Serving's warm-up file
(``assets.extra/tf_serving_warmup_requests``), so recorded production traffic can be dropped into
the next export as its warm-up set.

The request path only offers a record to a queue bounded in bytes (the tensors it holds: a
record that would take it past ``queue_bytes`` is dropped and counted); one writer thread
encodes and writes. Files rotate at ``max_file_bytes`` and the oldest are deleted past
``max_files``; a record larger than a whole file is skipped (counted ``oversize``), so disk use
never exceeds ``max_file_bytes * max_files``. A write error (disk full, directory made
unwritable) is counted and logged once per distinct error; requests never see it.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import random
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from swapserve.observability.calls import CallRecord
from swapserve.observability.metrics import Metrics

if TYPE_CHECKING:
    from swapserve.config.settings import Settings

log = logging.getLogger(__name__)

_RECORD_OVERHEAD = 16  # TFRecord framing: length (8) + its CRC (4) + the data's CRC (4)
_SUFFIX = ".tfrecord"


class RequestLog:
    """Writes sampled successful predictions to rotating TFRecord files.

    Args:
        directory: where the files go (created if missing).
        metrics: counts written, dropped and failed records.
        sample: the fraction of predictions recorded.
        max_file_bytes: a file is closed and a new one started past this size.
        max_files: older files are deleted past this many.
        responses: also record the outputs (``PredictLog.response``).
        queue_bytes: tensor bytes waiting for the writer; a record past it is dropped.
        draw: a uniform number in [0, 1) per call (tests pass a fixed one).
    """

    def __init__(
        self,
        directory: Path,
        metrics: Metrics,
        *,
        sample: float = 1.0,
        max_file_bytes: int = 64 << 20,
        max_files: int = 10,
        responses: bool = False,
        queue_bytes: int = 64 << 20,
        draw: Callable[[], float] = random.random,
    ) -> None:
        self.directory = directory
        self._metrics = metrics
        self._sample = sample
        self._max_file_bytes = max_file_bytes
        self._max_files = max_files
        self._responses = responses
        self._draw = draw
        self._queue: queue.Queue[tuple[CallRecord, int] | None] = queue.Queue()
        self._queue_bytes = queue_bytes
        self._queued_lock = threading.Lock()  # guards _queued
        self._queued = 0  # tensor bytes of the records in the queue
        # Only the writer thread touches the rest.
        self._writer: Any = None
        self._written = 0  # bytes in the current file
        self._sequence = 0
        self._last_error = ""
        self._thread = threading.Thread(target=self._run, name="request-log", daemon=True)
        self._thread.start()

    @classmethod
    def from_settings(cls, settings: Settings, metrics: Metrics) -> RequestLog:
        """The request log ``--request-log`` and its options describe."""
        assert settings.request_log is not None
        return cls(
            settings.request_log,
            metrics,
            sample=settings.request_log_sample,
            max_file_bytes=settings.request_log_max_bytes,
            max_files=settings.request_log_max_files,
            responses=settings.request_log_responses,
            queue_bytes=settings.request_log_queue_bytes,
        )

    def __call__(self, record: CallRecord) -> None:
        """Offers a finished call; never blocks."""
        if record.inputs is None or not record.ok or not record.version:
            return
        if self._sample < 1 and self._draw() >= self._sample:
            return
        size = _tensor_bytes(record, self._responses)
        if size + _RECORD_OVERHEAD > self._max_file_bytes:
            self._metrics.request_log.labels("oversize").inc()
            return
        with self._queued_lock:
            if self._queued + size > self._queue_bytes:
                full = True
            else:
                full, self._queued = False, self._queued + size
        if full:
            self._metrics.request_log.labels("dropped").inc()
            return
        self._queue.put_nowait((record, size))

    def close(self, timeout: float = 10.0) -> None:
        """Writes what is queued, then closes the current file."""
        with contextlib.suppress(queue.Full):
            self._queue.put(None, timeout=timeout)
        self._thread.join(timeout)

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            record, size = item
            try:
                data = _prediction_log(record, self._responses)
                del record, item  # the tensors may go before the write
                self._give_back(size)
                size = 0
                self._write(data)
            except Exception as err:  # every failure is counted; the next record tries again
                self._failed(err)
            finally:
                self._give_back(size)
        self._close_file()

    def _give_back(self, size: int) -> None:
        if size:
            with self._queued_lock:
                self._queued -= size

    def _write(self, data: bytes) -> None:
        if len(data) + _RECORD_OVERHEAD > self._max_file_bytes:  # it would exceed any file
            self._metrics.request_log.labels("oversize").inc()
            return
        if (
            self._writer is not None
            and self._written + len(data) + _RECORD_OVERHEAD > self._max_file_bytes
        ):
            self._close_file()
        if self._writer is None:
            self._open_file()
        self._writer.write(data)
        self._writer.flush()
        self._written += len(data) + _RECORD_OVERHEAD
        self._metrics.request_log.labels("written").inc()
        if self._last_error:
            log.info("request log: writing to %s again", self.directory)
            self._last_error = ""

    def _open_file(self) -> None:
        import tensorflow as tf  # noqa: PLC0415 (the writer thread only)

        self.directory.mkdir(parents=True, exist_ok=True)
        self._prune()  # first: the new file never makes max_files + 1, even for a moment
        self._sequence += 1
        name = f"requests-{int(time.time() * 1000)}-{self._sequence:06d}{_SUFFIX}"
        self._writer = tf.io.TFRecordWriter(str(self.directory / name))
        self._written = 0

    def _close_file(self) -> None:
        if self._writer is not None:
            try:
                self._writer.close()
            except Exception as err:
                self._failed(err)
            self._writer = None

    def _prune(self) -> None:
        """Deletes the oldest files, leaving room for one more within ``max_files``."""
        files = sorted(self.directory.glob(f"requests-*{_SUFFIX}"))
        for old in files[: max(0, len(files) - self._max_files + 1)]:
            old.unlink(missing_ok=True)

    def _failed(self, err: Exception) -> None:
        self._metrics.request_log.labels("failed").inc()
        self._close_file()  # a broken file is not written again
        message = f"{type(err).__name__}: {err}"
        if message != self._last_error:
            log.error("request log: cannot write to %s: %s (records are dropped)", self.directory,
                      message)  # fmt: skip
            self._last_error = message


def _tensor_bytes(record: CallRecord, responses: bool) -> int:
    """The bytes of the tensors a record holds (a string tensor's elements counted by their
    length): what it keeps in memory while queued, and about what it takes on disk."""
    arrays = list((record.inputs or {}).values())
    if responses:
        arrays += list((record.outputs or {}).values())
    total = 0
    for array in arrays:
        if array.dtype == object:
            total += sum(len(v) if isinstance(v, bytes | str) else 8 for v in array.flat)
        else:
            total += array.nbytes
    return total


def _prediction_log(record: CallRecord, responses: bool) -> bytes:
    """A call as a serialized ``PredictionLog`` with its ``PredictLog``."""
    from swapserve.apis import tfserving  # noqa: PLC0415 (the writer thread only)
    from swapserve.codecs.tfserving import encode_tensor  # noqa: PLC0415

    entry = tfserving.PredictionLog()
    predict = entry.predict_log
    request = predict.request
    request.model_spec.name = record.model
    request.model_spec.version.value = record.version
    request.model_spec.signature_name = record.signature
    assert record.inputs is not None
    for name, array in record.inputs.items():
        encode_tensor(array, request.inputs[name])
    request.output_filter.extend(record.output_filter)
    if responses and record.outputs is not None:
        predict.response.model_spec.CopyFrom(request.model_spec)
        for name, array in record.outputs.items():
            encode_tensor(array, predict.response.outputs[name])
    entry.log_metadata.model_spec.CopyFrom(request.model_spec)
    return bytes(entry.SerializeToString())
