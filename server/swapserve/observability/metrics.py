"""Prometheus metrics (prometheus-client), served on ``--metrics-port``.

Each server owns its own ``CollectorRegistry`` so several servers (tests) never collide. Labels are
kept to bounded sets: model, protocol, method, status code; only ``swapserve_model_runs_total``
carries the version, since every export adds a version. ``Metrics`` is the model core's event
observer (``swapserve.model.events``): the core calls its hooks and never imports this module.
"""

from __future__ import annotations

import contextlib
import threading
import weakref
from collections.abc import Callable, Mapping
from typing import Any
from wsgiref.simple_server import WSGIServer

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Enum,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)

from swapserve.model.events import Inflight, ModelEvents
from swapserve.model.outcomes import PHASES
from swapserve.observability.calls import CallRecord
from swapserve.observability.metrics_http import serve_registry
from swapserve.observability.stats import Statistics
from swapserve.observability.tfserving_metrics import TFServingMetrics
from swapserve.observability.timed_series import TimedCounter
from swapserve.observability.triton_metrics import TritonMetrics

_LATENCY_BUCKETS = (
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0,
)  # fmt: skip
_LOAD_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
_Labelled = Counter | Gauge | Histogram | Enum


class Metrics(ModelEvents):
    """Every metric swapserve exports (names and meanings: docs/operations.md)."""

    def __init__(self, tfserving_names: bool = False, triton_names: bool = False) -> None:
        r = self.registry = CollectorRegistry()
        self.tfserving = TFServingMetrics() if tfserving_names else None  # on the REST path
        self.triton = TritonMetrics() if triton_names else None  # on the metrics port
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}
        # The run series of (model, version), keyed by the int version: ``ran`` is on the
        # request path and ``str(version)`` is not free (cleared with the series it names).
        self._run_labels: dict[tuple[str, int], tuple[str, str]] = {}
        self._versions_lock = threading.Lock()  # guards _loaded; held while a call is counted
        self._loaded: set[tuple[str, int]] = set()
        """The versions loaded now: only they get per-version series. A call that finishes
        after its version was released is counted without a version, so a released version's
        series, once dropped, are never made again (55 swaps under load left 5 versions' series
        behind before)."""
        self.stats = Statistics(executions=lambda model, v: self.runs.count((model, str(v))))
        """The same calls per version, for V2 ModelStatistics and GetModelStatus."""
        self.calls = TimedCounter(
            ("swapserve_requests_total",
             "Calls answered, by model, the version and signature that took them (empty: none "
             "did), protocol, method and gRPC status code (HTTP: the HTTP status)."),
            ("swapserve_request_seconds",
             "Time from receiving a call to its answer, in the transport."),
            ["model", "version", "signature", "protocol", "method"], ["code"],
            _LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        """``swapserve_requests_total`` and ``swapserve_request_seconds``, updated together."""
        self.inflight = Gauge(
            "swapserve_inflight_requests", "Requests running on a model now.", ["model"], registry=r
        )
        self.runs = TimedCounter(
            ("swapserve_model_runs_total",
             "TensorFlow runs (a batch counts once), by model and version."),
            ("swapserve_model_run_seconds", "Time inside the TensorFlow session per run."),
            ["model", "version"], [], _LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        """``swapserve_model_runs_total`` and ``swapserve_model_run_seconds``."""
        self.batch_size = Histogram(
            "swapserve_batch_size",
            "Rows per batched run (after padding).",
            ["model"],
            buckets=_BATCH_BUCKETS,
            registry=r,
        )
        self.batch_queue_seconds = Histogram(
            "swapserve_batch_queue_seconds",
            "Time a request waited for its batch to start running.",
            ["model", "version"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.served_version = Gauge(
            "swapserve_served_version", "Version answering version-0 requests (0: none).",
            ["model"], registry=r,
        )  # fmt: skip
        self.loaded_versions = Gauge(
            "swapserve_loaded_versions",
            "Versions in memory (the served one plus any still finishing requests).",
            ["model"],
            registry=r,
        )
        self.loads = Counter(
            "swapserve_version_loads_total",
            "Version loads, by outcome (success, failure).",
            ["model", "outcome"],
            registry=r,
        )
        self.load_seconds = Histogram(
            "swapserve_version_load_seconds",
            "Time to load, validate and warm up a version.",
            ["model"],
            buckets=_LOAD_BUCKETS,
            registry=r,
        )
        self.swaps = Counter(
            "swapserve_swaps_total", "Served-version changes.", ["model"], registry=r
        )
        self.storage_errors_total = Counter(
            "swapserve_storage_errors_total",
            "Failed listings or downloads of a remote export root (retried with backoff).",
            ["model"],
            registry=r,
        )
        self.unloads = Counter(
            "swapserve_unloads_total", "Versions released.", ["model"], registry=r
        )
        self.config_reloads = Counter(
            "swapserve_config_reloads_total",
            "Reads of the config file or model repository that changed something (applied) or "
            "were refused (failed: the running config is kept).",
            ["result"],
            registry=r,
        )
        self.config_ok = Gauge(
            "swapserve_config_ok",
            "1 when the config file or model repository as it is now is served; 0 while an "
            "edit is refused (see the log for why).",
            registry=r,
        )
        self.config_ok.set(1)
        self._invalid_configs: set[str] = set()  # written by the config reader (under its lock)
        self.model_config_invalid = Gauge(
            "swapserve_model_config_invalid",
            "1 for each model whose own config (config.pbtxt) is invalid now: it is not served, "
            "or serves with its previous settings (the reason: the log, the repository index).",
            ["model"],
            registry=r,
        )
        self.version_rss = Gauge(
            "swapserve_version_rss_bytes",
            "Resident memory a version added when it loaded (the process RSS before and after "
            "loading and warming it up; concurrent loads blur it).",
            ["model", "version"],
            registry=r,
        )
        self.gate_checks = Counter(
            "swapserve_gate_checks_total",
            "Gate verdicts on new versions, by gate (signature, finite, latency, divergence) "
            "and outcome (passed, refused).",
            ["model", "gate", "outcome"],
            registry=r,
        )
        self.rollout_phase = Enum(
            "swapserve_rollout_phase",
            "The model's rollout phase: none, gating, canary, promoted, rolled_back, refused, "
            "forced (1 for the current one).",
            ["model"],
            states=[p.replace(" ", "_") or "none" for p in PHASES],
            registry=r,
        )
        self.rollout_version = Gauge(
            "swapserve_rollout_version",
            "The version the rollout phase is about (0: none).",
            ["model"],
            registry=r,
        )
        self.canary_percent = Gauge(
            "swapserve_canary_percent",
            "The percent of version-0 requests a canary answers now (0: no canary).",
            ["model"],
            registry=r,
        )
        self.rollouts = Counter(
            "swapserve_rollouts_total",
            "New versions' rollouts that ended, by outcome (promoted, rolled_back, refused, "
            "forced).",
            ["model", "outcome"],
            registry=r,
        )
        self.request_log = Counter(
            "swapserve_request_log_records_total",
            "Calls offered to the request log (--request-log): written, dropped (the queue's "
            "bytes are full), oversize (larger than a whole file) or failed (a write error).",
            ["result"],
            registry=r,
        )
        ProcessCollector(registry=r)
        GCCollector(registry=r)
        PlatformCollector(registry=r)

    def child(self, metric: _Labelled, *values: str) -> Any:
        """``metric.labels(*values)``, cached: the request path records six series per request
        and prometheus-client's ``labels`` (a lock and validation) costs a few microseconds."""
        key = (id(metric), values)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = metric.labels(*values)
        return found

    # ---- the model core's events --------------------------------------------------------------

    def model_added(self, model: str, inflight: Inflight) -> None:
        """Starts the model's inflight gauge, and its failure counters at 0 (an alert's
        ``increase`` needs the series before the first failure)."""
        self.track_inflight(model, inflight)
        self.child(self.storage_errors_total, model)
        self.child(self.loads, model, "failure")

    def model_removed(self, model: str) -> None:
        """Drops the model's series."""
        self.forget_model(model)

    def load_failed(self, model: str, version: int) -> None:
        """Counts a failed load."""
        self.child(self.loads, model, "failure").inc()

    def loaded(self, model: str, version: int, seconds: float, rss_added: int) -> None:
        """Counts and times a load; the version's memory."""
        self.child(self.loads, model, "success").inc()
        self.child(self.load_seconds, model).observe(seconds)
        self.child(self.loaded_versions, model).inc()
        self.child(self.version_rss, model, str(version)).set(rss_added)
        with self._versions_lock:
            self._loaded.add((model, version))

    def serving(self, model: str, version: int, previous: int) -> None:
        """The served version; a change from one version to another is a swap."""
        self.child(self.served_version, model).set(version)
        if previous and version:
            self.child(self.swaps, model).inc()

    def gate_checked(self, model: str, gate: str, passed: bool) -> None:
        """Counts a gate's verdict."""
        self.child(self.gate_checks, model, gate, "passed" if passed else "refused").inc()

    def rollout(self, model: str, phase: str, version: int, canary_percent: float) -> None:
        """The rollout phase, its version and canary share; a phase that ends a rollout is
        counted."""
        state = phase.replace(" ", "_") or "none"
        self.child(self.rollout_phase, model).state(state)
        self.child(self.rollout_version, model).set(version)
        self.child(self.canary_percent, model).set(canary_percent)
        if state in ("promoted", "rolled_back", "refused", "forced"):
            self.child(self.rollouts, model, state).inc()

    def unloaded(self, model: str, version: int) -> None:
        """Counts the release and drops the version's series and statistics."""
        self.child(self.unloads, model).inc()
        self.child(self.loaded_versions, model).dec()
        with self._versions_lock:
            self._loaded.discard((model, version))
            self.forget_version(model, version)

    def batch_waited(self, model: str, version: int, seconds: float) -> None:
        """A request's wait for its batch."""
        labels = self._run_labels.get((model, version))
        text = labels[1] if labels is not None else str(version)
        self.child(self.batch_queue_seconds, model, text).observe(seconds)

    def batch_ran(self, model: str, rows: int) -> None:
        """A batch's rows."""
        self.child(self.batch_size, model).observe(rows)

    def storage_errors(self, model: str, count: int) -> None:
        """Failed listings or downloads."""
        self.child(self.storage_errors_total, model).inc(count)

    def config_read(self, outcome: str, ok: bool) -> None:
        """A read of the config: counted when it applied or failed; ``config_ok``."""
        if outcome != "unchanged":
            self.config_reloads.labels(outcome).inc()
        self.config_ok.set(int(ok))

    def config_problems(self, problems: Mapping[str, str]) -> None:
        """``swapserve_model_config_invalid``: one series per invalid model config, gone once
        it is valid again."""
        gauge = self.model_config_invalid
        for model in self._invalid_configs - set(problems):
            gauge.remove(model)
        for model in problems:
            gauge.labels(model).set(1)
        self._invalid_configs = set(problems)

    # ---- series --------------------------------------------------------------------------------

    def track_inflight(self, model: str, source: Inflight) -> None:
        """Makes ``swapserve_inflight_requests{model}`` read ``source.inflight`` when scraped
        (the model's current manager; held weakly, so a removed model's map is not kept)."""
        ref = weakref.ref(source)

        def inflight() -> int:
            found = ref()
            return found.inflight if found is not None else 0

        self.child(self.inflight, model).set_function(inflight)

    def ran(self, model: str, version: int, seconds: float) -> None:
        """One model run of ``version`` (a batch counts once)."""
        labels = self._run_labels.get((model, version))
        if labels is None:
            labels = self._run_labels[model, version] = (model, str(version))
        self.runs.record(labels, seconds)

    def forget_version(self, model: str, version: int) -> None:
        """Drops a released version's series and statistics, so a long-lived server's metrics
        do not grow with every export."""
        self.stats.forget(model, version)
        self._forget(lambda values: values[:2] == (model, str(version)))

    def forget_model(self, model: str) -> None:
        """Drops every series of a model a config change removed (none shows in a scrape)."""
        with self._versions_lock:
            self._loaded = {key for key in self._loaded if key[0] != model}
            self.stats.forget_model(model)
            self._forget(lambda values: values[:1] == (model,))
        # Every other per-model series was made by ``child``: loads, swaps, batch sizes, gates...
        by_id = {id(m): m for m in vars(self).values() if isinstance(m, _Labelled)}
        for key in [k for k in self._children if k[1][:1] == (model,)]:
            del self._children[key]
            with contextlib.suppress(KeyError):
                by_id[key[0]].remove(*key[1])
        for names in (self.tfserving, self.triton):
            if names is not None:
                names.forget_model(model)

    def _forget(self, matches: Callable[[tuple[str, ...]], bool]) -> None:
        """Removes the series whose label values (model, version, …) match. Only per-version
        metrics put the version second; the others match on the model alone."""
        self._run_labels = {k: v for k, v in self._run_labels.items() if not matches(v)}
        self.calls.remove(matches)
        self.runs.remove(matches)
        by_id = {id(m): m for m in (self.batch_queue_seconds, self.version_rss)}
        for key in [k for k in self._children if k[0] in by_id and matches(k[1])]:
            del self._children[key]
            with contextlib.suppress(KeyError):
                by_id[key[0]].remove(*key[1])

    def observe(self, record: CallRecord, known: bool) -> None:
        """Counts and times a finished call; a model that is not served is labelled "" (so
        clients cannot create label values), as are the version and signature when no version
        took the call."""
        if known:
            with self._versions_lock:
                live = (record.model, record.version) in self._loaded
                version = str(record.version) if record.version and live else ""
                key = (record.model, version, record.signature if version else "",
                       record.protocol, record.method, record.code)  # fmt: skip
                self.calls.record(key, record.seconds)
                if live:
                    self.stats.called(record)
        else:
            key = ("", "", "", record.protocol, record.method, record.code)
            self.calls.record(key, record.seconds)
        for names in (self.tfserving, self.triton):
            if names is not None:
                names.observe(record, known)

    def exposition(self) -> tuple[bytes, str]:
        """The Prometheus text of every metric, and its content type (the REST metrics path)."""
        extra = self.tfserving.text().encode() if self.tfserving is not None else b""
        return generate_latest(self.registry) + extra, CONTENT_TYPE_LATEST

    def serve(self, host: str, port: int) -> tuple[WSGIServer, threading.Thread, int]:
        """Starts the ``/metrics`` HTTP endpoint (404 on any other path); returns the server,
        its thread, the bound port."""
        extra = self.triton.text if self.triton is not None else None
        return serve_registry(self.registry, host, port, extra)
