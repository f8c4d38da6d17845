"""``swapserve`` / ``python -m swapserve``: serve one model from an export root."""

from __future__ import annotations

import argparse
import importlib.util
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from swapserve import __version__, logs, quiet, tfserving_flags
from swapserve.args import settings_from_args
from swapserve.settings import (
    BATCHING_MODES,
    RUN_THREADS,
    BatchingSettings,
    ModelSettings,
    SessionSettings,
    Settings,
    SettingsError,
)

__all__ = ["build_parser", "main", "settings_from_args"]

log = logging.getLogger("swapserve")


def build_parser() -> argparse.ArgumentParser:
    """The server's flags; defaults come from the settings classes."""
    d, m, s = Settings(models=()), ModelSettings("m", Path()), SessionSettings()
    p = argparse.ArgumentParser(
        prog="swapserve",
        description="Serve a TensorFlow SavedModel export root over gRPC, hot-swapping new "
        "versions as they are exported.",
    )
    p.add_argument("--version", action="version", version=f"swapserve {__version__}")
    p.add_argument(
        "--config",
        type=Path,
        help="YAML file listing the models to serve (see docs/configuration.md), or TF Serving's "
        "ModelServerConfig in text format (--model_config_file); re-read on SIGHUP and on "
        "HandleReloadConfigRequest. Replaces the one-model flags below",
    )
    p.add_argument(
        "--model-repository",
        help="serve every subdirectory of this Triton-layout model repository as a model of "
        "that name (versions in <model>/<version>/[model.savedmodel/]; config.pbtxt keys: "
        "docs/migrating.md); models added or removed later are picked up by polling",
    )
    p.add_argument(
        "--config-poll-seconds",
        type=float,
        default=None,
        help="re-read --config (rescan --model-repository) every N seconds and apply changes "
        "as SIGHUP does; an invalid edit changes nothing and is logged once (default: off; "
        "a repository: every --poll-seconds)",
    )
    p.add_argument("--model-name", help="one model: the name clients use for it")
    p.add_argument(
        "--export-root",
        help="one model: directory of numeric version subdirectories (waited for if missing), "
        "or s3://bucket/prefix / gs://bucket/prefix (mirrored into $SWAPSERVE_CACHE_DIR)",
    )
    p.add_argument(
        "--latest",
        type=int,
        default=m.versions.latest,
        help="one model: serve the N newest versions; the newest answers requests without a "
        "version (default: %(default)s)",
    )
    p.add_argument(
        "--specific-versions",
        default="",
        help="one model: serve exactly these comma-separated versions instead of the newest",
    )
    p.add_argument(
        "--max-request-elements",
        type=int,
        default=None,
        help="one model: most input elements one request may carry; more get INVALID_ARGUMENT "
        "(default: only --max-message-bytes limits them)",
    )
    p.add_argument(
        "--label",
        action="append",
        default=[],
        metavar="NAME=VERSION",
        help="one model: a version label clients may request (repeat for each label)",
    )
    p.add_argument("--host", default=d.host, help="address to listen on (default: %(default)s)")
    p.add_argument(
        "--port",
        type=int,
        default=d.port,
        help="port to listen on (0: any free) (default: %(default)s)",
    )
    p.add_argument(
        "--metrics-port",
        type=int,
        default=None,
        help="serve Prometheus metrics on http://HOST:PORT/metrics (default: off; 0: any port)",
    )
    p.add_argument(
        "--poll-seconds",
        type=float,
        default=m.poll_seconds,
        help="seconds between rescans of the export root (default: %(default)s)",
    )
    p.add_argument(
        "--settle-seconds",
        type=float,
        default=None,
        help="seconds a version's files must stay unchanged before it loads "
        "(default: one poll interval)",
    )
    p.add_argument(
        "--reload-settle-seconds",
        type=float,
        default=m.reload_settle_seconds,
        help="seconds between Reload's two scans that check a version is not still being "
        "written (default: %(default)s)",
    )
    p.add_argument(
        "--no-warm-up",
        dest="warm_up",
        action="store_false",
        help="serve new versions without a warm-up run",
    )
    p.add_argument(
        "--run-thread",
        choices=RUN_THREADS,
        default=SessionSettings().run_thread,
        help="where a request's graph runs: TensorFlow's inter-op pool, the calling thread "
        "(no hand-off; best for small sequential graphs) or auto: each version times both "
        "at load and keeps the faster (default: %(default)s)",
    )
    b = BatchingSettings()
    p.add_argument(
        "--enable-batching",
        action="store_true",
        help="batch concurrent requests into one model run (dynamic batching)",
    )
    p.add_argument(
        "--max-batch-size",
        type=int,
        default=b.max_batch_size,
        help="most rows per batched run; larger requests are rejected (default: %(default)s)",
    )
    p.add_argument(
        "--batching-mode",
        choices=BATCHING_MODES,
        default=b.mode,
        help="eager: a request runs at once when a batch thread is free, only requests "
        "arriving while all are busy are batched; timeout: TF Serving's batcher, a batch waits "
        "up to --batch-timeout-micros to fill (default: %(default)s)",
    )
    p.add_argument(
        "--batch-timeout-micros",
        type=int,
        default=b.batch_timeout_micros,
        help="with --batching-mode timeout: how long a batch waits to fill up "
        "(default: %(default)s)",
    )
    p.add_argument(
        "--max-enqueued-batches",
        type=int,
        default=b.max_enqueued_batches,
        help="batches that may wait; beyond, RESOURCE_EXHAUSTED (default: %(default)s)",
    )
    p.add_argument(
        "--num-batch-threads",
        type=int,
        default=b.num_batch_threads,
        help="threads running batches (default: %(default)s)",
    )
    p.add_argument(
        "--allowed-batch-sizes",
        default="",
        help="comma-separated sizes batches are padded to, e.g. 8,16,32 (the last must equal "
        "--max-batch-size)",
    )
    p.add_argument(
        "--rest-port",
        type=int,
        default=None,
        help="serve TF Serving's REST API and /healthz, /readyz over HTTP/1.1 on this port "
        "(0: any free port; default: off)",
    )
    p.add_argument(
        "--rest-metrics-path",
        help="also serve the Prometheus metrics at this path of --rest-port, e.g. "
        "/monitoring/prometheus/metrics (TF Serving's --monitoring_config_file)",
    )
    p.add_argument(
        "--grpc-threads",
        type=int,
        default=d.grpc_threads,
        help="threads serving RPCs (default: %(default)s)",
    )
    p.add_argument(
        "--max-concurrent-rpcs",
        type=int,
        default=None,
        help="RPCs handled at once; more get RESOURCE_EXHAUSTED at once (default: no limit)",
    )
    p.add_argument(
        "--max-admin-rpcs",
        type=int,
        default=d.max_admin_rpcs,
        help="admin calls (Reload, load, unload) handled at once, on threads of their own; more "
        "get RESOURCE_EXHAUSTED at once (default: %(default)s)",
    )
    p.add_argument(
        "--handshake-timeout-seconds",
        type=float,
        default=d.handshake_timeout_seconds,
        help="close connections that have not completed the TLS/HTTP/2 handshake within this "
        "(default: %(default)s)",
    )
    p.add_argument(
        "--max-connection-idle-seconds",
        type=float,
        default=d.max_connection_idle_seconds,
        help="send GOAWAY to connections without an RPC for this long; 0: never "
        "(default: %(default)s)",
    )
    p.add_argument(
        "--keepalive-seconds",
        type=float,
        default=d.keepalive_seconds,
        help="ping connections idle this long and close those that do not answer within 20 s; "
        "0: off (default: %(default)s)",
    )
    p.add_argument(
        "--max-message-bytes",
        type=int,
        default=d.max_message_bytes,
        help="largest request/response message in bytes (default: %(default)s)",
    )
    p.add_argument(
        "--grace-seconds",
        type=float,
        default=d.grace_seconds,
        help="seconds in-flight requests get to finish on SIGTERM/SIGINT (default: %(default)s)",
    )
    p.add_argument(
        "--drain-seconds",
        type=float,
        default=d.drain_seconds,
        help="on SIGTERM, seconds to keep serving with health NOT_SERVING before refusing new "
        "requests, so load balancers move away first (default: %(default)s; SIGINT skips it)",
    )
    _add_access_flags(p)
    p.add_argument(
        "--intra-op-threads",
        type=int,
        default=s.intra_op_threads,
        help="TensorFlow intra-op threads per session, 0: TensorFlow's choice "
        "(default: %(default)s)",
    )
    p.add_argument(
        "--inter-op-threads",
        type=int,
        default=s.inter_op_threads,
        help="TensorFlow inter-op threads per session, 0: TensorFlow's choice "
        "(default: %(default)s)",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=1,
        help="server processes sharing the port (SO_REUSEPORT), each with its own model copy "
        "(default: %(default)s)",
    )
    _add_call_log_flags(p, d)
    p.add_argument(
        "--otel",
        action="store_true",
        help="export OpenTelemetry traces (a span per RPC) over OTLP/gRPC, configured by the "
        "OTEL_EXPORTER_OTLP_* environment variables; needs the optional extra 'otel' "
        "(make setup installs it)",
    )
    p.add_argument(
        "--log-format",
        default="text",
        choices=logs.FORMATS,
        help="text lines, or one JSON object per line (default: %(default)s)",
    )
    p.add_argument(
        "--log-level",
        default="INFO",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="logging level (default: %(default)s)",
    )
    return p


def _add_call_log_flags(p: argparse.ArgumentParser, d: Settings) -> None:
    """The access log and the request log."""
    p.add_argument(
        "--access-log",
        action="store_true",
        help="log one line per call (protocol, method, model, version, signature, rows, status, "
        "ms, peer, trace id; never the payload) on the swapserve.access logger",
    )
    p.add_argument(
        "--access-log-sample",
        type=float,
        default=d.access_log_sample,
        help="fraction of calls the access log writes (default: %(default)s)",
    )
    p.add_argument(
        "--request-log",
        type=Path,
        help="record sampled predictions in this directory as TF Serving PredictionLog TFRecord "
        "files (usable as the next export's assets.extra/tf_serving_warmup_requests)",
    )
    p.add_argument(
        "--request-log-sample",
        type=float,
        default=d.request_log_sample,
        help="fraction of successful predictions recorded (default: %(default)s)",
    )
    p.add_argument(
        "--request-log-max-bytes",
        type=int,
        default=d.request_log_max_bytes,
        help="start a new request log file past this size (default: %(default)s)",
    )
    p.add_argument(
        "--request-log-max-files",
        type=int,
        default=d.request_log_max_files,
        help="request log files kept; older ones are deleted (default: %(default)s)",
    )
    p.add_argument(
        "--request-log-responses",
        action="store_true",
        help="record the outputs too (PredictLog.response)",
    )


def _add_access_flags(p: argparse.ArgumentParser) -> None:
    """Who may call: admin peers, TLS, tokens."""
    p.add_argument(
        "--allow-remote-admin",
        action="store_true",
        help="accept Reload from non-loopback peers (by default only loopback may reload)",
    )
    p.add_argument("--tls-cert", type=Path, help="PEM certificate chain: serve TLS only")
    p.add_argument("--tls-key", type=Path, help="PEM private key of --tls-cert")
    p.add_argument(
        "--tls-client-ca",
        type=Path,
        help="PEM CA bundle: require client certificates it signed (mutual TLS)",
    )
    p.add_argument(
        "--admin-token-file",
        type=Path,
        help="file holding the bearer token admin RPCs need (or set SWAPSERVE_ADMIN_TOKEN); "
        "with it, admin RPCs are accepted from any peer that presents it",
    )
    p.add_argument(
        "--token-file",
        type=Path,
        help="file holding the bearer token every other RPC needs (or set SWAPSERVE_TOKEN); "
        "health checks and reflection stay open",
    )


def main(argv: Sequence[str] | None = None) -> None:
    """Parses flags, serves until SIGTERM/SIGINT, then shuts down gracefully."""
    parser = build_parser()
    argv, ignored = tfserving_flags.parse_argv(parser, sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    logs.configure(args.log_level, args.log_format)
    for warning in ignored:
        log.warning("%s", warning)
    try:
        settings = settings_from_args(args, parser)
    except SettingsError as err:
        parser.error(str(err))

    if args.workers < 1:
        parser.error(f"--workers must be >= 1, got {args.workers}")
    if importlib.util.find_spec("tensorflow") is None:
        log.error(
            "TensorFlow is not installed: install swapserve with an extra, "
            "'swapserve[cpu]' (tensorflow-cpu) or 'swapserve[gpu]' (tensorflow with CUDA)"
        )
        sys.exit(1)
    if args.workers > 1:
        from swapserve.cluster.supervisor import run_workers  # noqa: PLC0415

        sys.exit(run_workers(settings, args.workers, args.log_level, args.log_format))

    # Imported after flag checks: TensorFlow takes seconds to import.
    with quiet.loading_tensorflow(args.log_level == "DEBUG"):
        from swapserve.app import create_app, serve  # noqa: PLC0415

    try:
        app = create_app(settings)
    except SettingsError as err:
        log.error("%s", err)
        sys.exit(1)
    serve(app)
