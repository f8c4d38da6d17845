"""Triton's metric names, beside ours, on the metrics port when serving a Triton repository.

Triton (``src/metrics.cc``, ``src/metric_model_reporter.cc``) exports per model and version,
labels ``model`` and ``version``, counters written without ``_total``:

- ``nv_inference_request_success``: successful inference requests;
- ``nv_inference_request_failure`` (also labelled ``reason``: ``REJECTED``, ``CANCELED``,
  ``BACKEND``, ``OTHER``): failed ones;
- ``nv_inference_count``: inferences (rows: a request of batch 8 counts 8);
- ``nv_inference_request_duration_us``, ``nv_inference_queue_duration_us``,
  ``nv_inference_compute_infer_duration_us``: cumulative microseconds of the successful
  requests: end to end, waiting for a batch, in the model run.

Counted for KServe V2 ``ModelInfer`` over gRPC and HTTP. A request no version took is labelled
``version=""``, and a model that is not served ``model=""``. Not exported: the execution count
(a batch of several requests runs once here, but is recorded per request), the compute input
and output times (they are inside the run), the summaries and the GPU and cache series.
"""

from __future__ import annotations

import threading

from swapserve.observability.calls import CallRecord
from swapserve.observability.tfserving_metrics import label_value

_PROTOCOLS = frozenset({"kserve_v2", "kserve_v2_rest"})
_REASONS = {
    "RESOURCE_EXHAUSTED": "REJECTED",
    "UNAVAILABLE": "REJECTED",
    "429": "REJECTED",
    "503": "REJECTED",
    "CANCELLED": "CANCELED",
    "DEADLINE_EXCEEDED": "CANCELED",
    "504": "CANCELED",
    "INTERNAL": "BACKEND",
    "500": "BACKEND",
}
"""Our codes as Triton's failure reasons (the rest: ``OTHER``)."""
_COUNTERS = (
    ("nv_inference_request_success", "Number of successful inference requests, all batch sizes"),
    ("nv_inference_count", "Number of inferences performed (does not include cached requests)"),
    ("nv_inference_request_duration_us", "Cumulative inference request duration in microseconds"),
    ("nv_inference_queue_duration_us", "Cumulative inference queuing duration in microseconds"),
    (
        "nv_inference_compute_infer_duration_us",
        "Cumulative compute inference duration in microseconds",
    ),
)
_FAILURE = "nv_inference_request_failure"


class TritonMetrics:
    """Counts V2 inference calls under Triton's names."""

    def __init__(self) -> None:
        self._lock = threading.Lock()  # guards _success and _failure
        self._success: dict[tuple[str, str], list[float]] = {}
        """(model, version) -> [requests, rows, request us, queue us, run us] (``_COUNTERS``)."""
        self._failure: dict[tuple[str, str, str], int] = {}
        """(model, version, reason) -> failed requests."""

    def observe(self, record: CallRecord, known: bool) -> None:
        """Counts ``record`` if it is a V2 inference call."""
        if record.protocol not in _PROTOCOLS or record.method != "ModelInfer":
            return
        model = record.model if known else ""
        version = str(record.version) if record.version and known else ""
        with self._lock:
            if record.ok:
                cells = self._success.setdefault((model, version), [0.0] * len(_COUNTERS))
                cells[0] += 1
                cells[1] += record.rows
                cells[2] += record.seconds * 1e6
                cells[3] += record.queue_seconds * 1e6
                cells[4] += record.run_seconds * 1e6
            else:
                key = (model, version, _REASONS.get(record.code, "OTHER"))
                self._failure[key] = self._failure.get(key, 0) + 1

    def forget_model(self, model: str) -> None:
        """Drops a removed model's series."""
        with self._lock:
            self._success = {k: v for k, v in self._success.items() if k[0] != model}
            self._failure = {k: v for k, v in self._failure.items() if k[0] != model}

    def text(self) -> bytes:
        """The series in Prometheus text, as Triton writes them."""
        with self._lock:
            success = sorted((k, list(v)) for k, v in self._success.items())
            failure = sorted(self._failure.items())
        lines: list[str] = []
        for i, (name, help_text) in enumerate(_COUNTERS):
            lines += [f"# HELP {name} {help_text}", f"# TYPE {name} counter"]
            lines += [
                f'{name}{{model="{label_value(m)}",version="{v}"}} {_number(cells[i])}'
                for (m, v), cells in success
            ]
        lines += [
            f"# HELP {_FAILURE} Number of failed inference requests, all batch sizes",
            f"# TYPE {_FAILURE} counter",
        ]
        lines += [
            f'{_FAILURE}{{model="{label_value(m)}",reason="{reason}",version="{v}"}} {n}'
            for (m, v, reason), n in failure
        ]
        return ("\n".join(lines) + "\n").encode()


def _number(value: float) -> str:
    return str(int(value)) if value == int(value) else f"{value:.1f}"
