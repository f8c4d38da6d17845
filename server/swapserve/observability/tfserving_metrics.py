"""TF Serving's own metric names, beside ours, for dashboards and alerts built on TF Serving.

With ``--monitoring_config_file`` (Prometheus enabled) TF Serving exports, on its REST port:

- ``:tensorflow:serving:request_count{model_name, status}``: a counter *without* ``_total``;
  ``status`` is the gRPC code name (``OK``, ``NOT_FOUND``...). Counted for gRPC Predict,
  Classify and Regress, and for every REST ``/v1/models`` call.
- ``:tensorflow:serving:request_latency{model_name, API, entrypoint}``: a histogram in
  microseconds, successful calls only; ``API`` is ``Predict``/``Classify``/``Regress`` over gRPC
  (``entrypoint="GRPC"``) and the URL's verb (``predict``...) over REST (``entrypoint="REST"``);
  buckets 10 * 1.8^i for i < 33, then ``+Inf``.

Names, labels, units and buckets are TF Serving's (``servables/tensorflow/util.cc``,
``util/prometheus_exporter.cc``). One difference: a model that is not served is labelled ""
(TF Serving labels it as the request spelled it, so any client can create series).
"""

from __future__ import annotations

import bisect
import threading

from swapserve.observability.calls import CallRecord

REQUEST_COUNT = ":tensorflow:serving:request_count"
REQUEST_LATENCY = ":tensorflow:serving:request_latency"
BUCKETS = tuple(10 * 1.8**i for i in range(33))
"""TF Serving's ``Buckets::Exponential(10, 1.8, 33)``, in microseconds (~20 minutes at the top)."""
_GRPC_APIS = frozenset({"Predict", "Classify", "Regress"})
_ENTRYPOINTS = {"tfserving": "GRPC", "tfserving_rest": "REST"}


class TFServingMetrics:
    """Counts the calls of TF Serving's surfaces under TF Serving's names."""

    def __init__(self) -> None:
        self._lock = threading.Lock()  # guards _counts and _latency
        self._counts: dict[tuple[str, str], int] = {}
        """(model_name, status) -> calls."""
        self._latency: dict[tuple[str, str, str], list[float]] = {}
        """(model_name, API, entrypoint) -> [count per bucket (the last is +Inf)..., sum]."""

    def observe(self, record: CallRecord, known: bool) -> None:
        """Counts ``record`` if TF Serving would (its protocol and method)."""
        entrypoint = _ENTRYPOINTS.get(record.protocol)
        if entrypoint is None or (entrypoint == "GRPC" and record.method not in _GRPC_APIS):
            return
        model = record.model if known else ""
        status = record.grpc_code or record.code
        micros = record.seconds * 1e6
        with self._lock:
            self._counts[(model, status)] = self._counts.get((model, status), 0) + 1
            if status == "OK":
                cells = self._latency.setdefault(
                    (model, record.method, entrypoint), [0.0] * (len(BUCKETS) + 2)
                )
                cells[bisect.bisect_left(BUCKETS, micros)] += 1  # len(BUCKETS): +Inf
                cells[-1] += micros

    def forget_model(self, model: str) -> None:
        """Drops a removed model's series."""
        with self._lock:
            for key in [k for k in self._counts if k[0] == model]:
                del self._counts[key]
            for lkey in [k for k in self._latency if k[0] == model]:
                del self._latency[lkey]

    def text(self) -> str:
        """The series in Prometheus text, as TF Serving's exporter writes them (a counter named
        without ``_total``, which prometheus-client's own exposition would add)."""
        with self._lock:
            counts = sorted(self._counts.items())
            latency = sorted((k, list(v)) for k, v in self._latency.items())
        lines = [f"# TYPE {REQUEST_COUNT} counter"]
        lines += [
            f'{REQUEST_COUNT}{{model_name="{label_value(m)}",status="{status}"}} {n}'
            for (m, status), n in counts
        ]
        lines.append(f"# TYPE {REQUEST_LATENCY} histogram")
        for (model, api, entrypoint), cells in latency:
            labels = f'model_name="{label_value(model)}",API="{api}",entrypoint="{entrypoint}"'
            total = 0
            for limit, hits in zip((*BUCKETS, float("inf")), cells[:-1], strict=True):
                total += int(hits)
                le = "+Inf" if limit == float("inf") else f"{limit:.6g}"
                lines.append(f'{REQUEST_LATENCY}_bucket{{{labels},le="{le}"}} {total}')
            lines.append(f"{REQUEST_LATENCY}_sum{{{labels}}} {cells[-1]:g}")
            lines.append(f"{REQUEST_LATENCY}_count{{{labels}}} {total}")
        return "\n".join(lines) + "\n"


def label_value(value: str) -> str:
    """A Prometheus label value, escaped for the text format."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
