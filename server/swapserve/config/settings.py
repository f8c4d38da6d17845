"""The server's settings (``Settings``): listeners, limits, access, logs, and the models it
serves, typed and validated once.

Each setting is declared once, as a field with its help text and flag (``setting``,
``swapserve.config.declare``): ``swapserve``'s flags, their mapping to these classes, the config
file's ``server`` keys and docs/configuration.md's flag table all come from it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from swapserve.config.channel_args import parse_channel_arguments
from swapserve.config.declare import setting
from swapserve.config.model_settings import (
    RUN_THREADS,
    ModelSettings,
    SessionSettings,
    SettingsError,
)


@dataclass(frozen=True)
class Settings:
    """The whole server."""

    models: tuple[ModelSettings, ...]
    """The models served."""
    config_path: Path | None = setting(
        None, name="--config", shown_default="none",
        help="YAML file listing the models to serve, or TF Serving's ModelServerConfig in text "
        "format (--model_config_file); re-read on SIGHUP and on HandleReloadConfigRequest; "
        "replaces the one-model flags",
        doc="see [Many models](configuration.md#many-models-version-policies-and-labels)",
    )  # fmt: skip
    model_repository: Path | None = setting(
        None, shown_default="none",
        help="serve every subdirectory of this Triton-layout model repository as a model of "
        "that name (versions in <model>/<version>/[model.savedmodel/]); models added or removed "
        "later are picked up by polling",
        doc="see [Triton model repositories](configuration.md#triton-model-repositories)",
    )  # fmt: skip
    model_defaults: ModelSettings | None = None
    """Options from the flags for models the config or repository does not fully describe: a
    repository model's polling, settle times, warm-up and limits, and, with
    ``--enable-batching``, the batching of every model that does not batch by its own config."""
    config_poll_seconds: float | None = setting(
        None,
        help="re-read --config (rescan --model-repository) every N seconds and apply changes as "
        "SIGHUP does; an invalid edit changes nothing and is logged once; 0: never (default: "
        "off; a repository: every --poll-seconds)",
    )  # fmt: skip
    startup_models: str | None = setting(
        None, shown_default="all",
        help="with --model-repository: load only these models at start (comma-separated; '': "
        "none, '*': all); the others are listed unloaded until RepositoryModelLoad loads one, "
        "re-reading its config.pbtxt (Triton's --model-control-mode=explicit)",
        doc="see [Triton model repositories](configuration.md#triton-model-repositories)",
    )  # fmt: skip
    config_settle_seconds: float = setting(
        5.0,
        help="a polled --config (or repository) change applies once it has read the same for "
        "this long, so a file caught half-written is never applied; a file replaced whole (a "
        "rename, a ConfigMap update) applies at once, as do SIGHUP and "
        "HandleReloadConfigRequest",
    )  # fmt: skip
    host: str = setting(
        "0.0.0.0",  # noqa: S104 (a server listens on all interfaces unless told otherwise)
        server_key=True, help="address to listen on",
    )  # fmt: skip
    port: int = setting(
        8500, server_key=True, help="gRPC port to listen on (0: any free one; the bound port is "
        "logged)",
    )  # fmt: skip
    rest_port: int | None = setting(
        None, server_key=True,
        help="serve TF Serving's REST API, KServe V2 over HTTP, /healthz and /readyz over "
        "HTTP/1.1 on this port (0: any free port; same TLS and tokens as gRPC)",
        doc="see [HTTP](protocols.md#http-tf-servings-rest-api)",
    )  # fmt: skip
    rest_metrics_path: str | None = setting(
        None,
        help="also serve the Prometheus metrics at this path of --rest-port, e.g. "
        "/monitoring/prometheus/metrics (TF Serving's --monitoring_config_file)",
    )  # fmt: skip
    metrics_port: int | None = setting(
        None, server_key=True,
        help="serve Prometheus metrics on http://HOST:PORT/metrics (0: any free port, logged)",
        doc="with `--workers`, the supervisor answers it with the sum over the workers (each "
        "worker has a private loopback endpoint it scrapes)",
    )  # fmt: skip
    grpc_threads: int = setting(
        16, server_key=True,
        help="threads serving RPCs (TensorFlow releases the GIL, so model runs overlap)",
    )  # fmt: skip
    active_threads: int = setting(
        2, server_key=True,
        help="of those, threads taking calls at once (gRPC and HTTP); another starts only while "
        "calls wait and none finished for 2 ms (docs/performance.md#rpc-threads)",
    )  # fmt: skip
    max_concurrent_rpcs: int | None = setting(
        None, server_key=True, shown_default="no limit",
        help="RPCs handled at once; more get RESOURCE_EXHAUSTED at once",
    )  # fmt: skip
    max_admin_rpcs: int = setting(
        4, server_key=True,
        help="admin calls (Reload, load, unload, config reload) handled at once, on threads "
        "added to the gRPC pool so they never take a prediction's thread; more get "
        "RESOURCE_EXHAUSTED at once",
    )  # fmt: skip
    max_message_bytes: int = setting(
        256 * 1024 * 1024, server_key=True,
        help="largest gRPC message in bytes, request or response (HTTP bodies: "
        "--max-http-body-bytes)",
    )  # fmt: skip
    rest_timeout_seconds: float | None = setting(
        None, server_key=True, shown_default="off",
        help="answer an HTTP call that takes longer than this 504 (DEADLINE_EXCEEDED), as TF "
        "Serving's --rest_api_timeout_in_ms; the model run itself finishes on its thread",
    )  # fmt: skip
    version_batching_file: bool = setting(
        False, server_key=True,
        help="a version whose directory holds batching_params.pbtxt (TF Serving's "
        "BatchingParameters) batches with it instead of the model's batching (as TF Serving's "
        "--enable_per_model_batching_parameters)",
    )  # fmt: skip
    cors: bool = setting(
        False, server_key=True,
        help="answer CORS preflights on the HTTP port and let any origin call it (TF Serving's "
        "--rest_api_enable_cors_support: Access-Control-Allow-Origin *)",
    )  # fmt: skip
    grpc_socket_path: Path | None = setting(
        None, server_key=True, metavar="PATH",
        help="also serve gRPC on this Unix-domain socket (as TF Serving's --grpc_socket_path); "
        "its callers count as local for admin calls",
    )  # fmt: skip
    grpc_channel_arguments: str = setting(
        "", server_key=True, metavar="KEY=VALUE,...", shown_default="none",
        help="gRPC core channel arguments for the server, as TF Serving's "
        "--grpc_channel_arguments (e.g. grpc.max_connection_age_ms=60000); numbers are passed as "
        "integers, and they override our own",
    )  # fmt: skip
    handshake_timeout_seconds: float = setting(
        10.0, server_key=True,
        help="close connections that have not completed the TLS and HTTP/2 handshake (the "
        "client preface) within this, so silent sockets cannot pile up file descriptors",
    )  # fmt: skip
    max_connection_idle_seconds: float = setting(
        300.0, server_key=True,
        help="send GOAWAY to connections without an RPC for this long and close them (clients "
        "reconnect on their next call); 0: never",
    )  # fmt: skip
    keepalive_seconds: float = setting(
        60.0, server_key=True,
        help="ping connections idle this long and close those that do not answer within 20 s "
        "(peers that vanished without a FIN); 0: off. Clients may ping every 10 s or more",
    )  # fmt: skip
    max_http_connections: int | None = setting(
        None, server_key=True, shown_default="from the fd limit",
        help="HTTP connections open at once; past it the longest-idle keep-alive connection is "
        "closed, else the new one gets 503 and is closed (default: an even share of the "
        "open-file limit left after a reserve, see docs/operations.md)",
    )  # fmt: skip
    max_grpc_connections: int | None = setting(
        None, server_key=True, shown_default="from the fd limit",
        help="gRPC connections open at once; past it new ones are closed at accept (default: "
        "an even share of the open-file limit left after a reserve)",
    )  # fmt: skip
    http_header_timeout_seconds: float = setting(
        60.0, server_key=True,
        help="close an HTTP connection with 408 when a request's head has not fully arrived "
        "this long after its first byte (nginx's client_header_timeout)",
    )  # fmt: skip
    http_body_timeout_seconds: float = setting(
        60.0, server_key=True,
        help="answer 408 and close when no byte of a request body arrives for this long "
        "(nginx's client_body_timeout)",
    )  # fmt: skip
    http_idle_timeout_seconds: float = setting(
        75.0, server_key=True,
        help="close an HTTP connection that has sent no request for this long, counted from "
        "its opening or its last answer (nginx's keepalive_timeout)",
    )  # fmt: skip
    max_http_body_bytes: int = setting(
        32 << 20, server_key=True, shown_default="32 MiB",
        help="largest HTTP request body, counted after gzip/deflate decompression (413 past "
        "it); binary tensors (KServe V2's binary extension) carry large inputs best",
    )  # fmt: skip
    http_body_memory_bytes: int = setting(
        512 << 20, server_key=True, shown_default="512 MiB",
        help="memory all HTTP request bodies in progress may take together: a JSON body "
        "counts 16x its size (what parsing it costs), a binary one its size; a request past "
        "it gets 503 with Retry-After",
    )  # fmt: skip
    grace_seconds: float = setting(
        10.0, server_key=True,
        help="on SIGTERM/SIGINT, seconds in-flight requests get to finish",
    )  # fmt: skip
    drain_seconds: float = setting(
        5.0, server_key=True,
        help="on SIGTERM, seconds to keep serving with health NOT_SERVING before refusing new "
        "requests with UNAVAILABLE, so load balancers move away first (SIGINT skips it)",
        doc="see [Start, reload, stop](operations.md#start-reload-stop)",
    )  # fmt: skip
    allow_remote_admin: bool = setting(
        False, help="accept admin RPCs (Reload, load, unload) from non-loopback peers without "
        "an admin token",
    )  # fmt: skip
    tls_cert: Path | None = setting(
        None, shown_default="none",
        help="PEM certificate chain of the server; with --tls-key, the ports speak TLS only",
    )  # fmt: skip
    tls_key: Path | None = setting(None, shown_default="none", help="PEM private key of --tls-cert")
    tls_client_ca: Path | None = setting(
        None, shown_default="none",
        help="PEM CA bundle: clients must present a certificate it signed (mutual TLS)",
    )  # fmt: skip
    admin_token: str | None = setting(
        None, name="--admin-token-file", from_env="SWAPSERVE_ADMIN_TOKEN",
        shown_default="none (`$SWAPSERVE_ADMIN_TOKEN`)",
        help="file holding the bearer token admin RPCs need (or set SWAPSERVE_ADMIN_TOKEN); "
        "with it, admin RPCs are accepted from any peer that presents it",
    )  # fmt: skip
    token: str | None = setting(
        None, name="--token-file", from_env="SWAPSERVE_TOKEN",
        shown_default="none (`$SWAPSERVE_TOKEN`)",
        help="file holding the bearer token every other RPC needs (or set SWAPSERVE_TOKEN); "
        "health checks and reflection stay open",
    )  # fmt: skip
    access_log: bool = setting(
        False,
        help="log one line per call (protocol, method, model, version, signature, rows, status, "
        "ms, peer, trace id; never the payload or a header) on the swapserve.access logger",
        doc="see [Logs](operations.md#access-log-and-request-log)",
    )  # fmt: skip
    access_log_sample: float = setting(1.0, help="fraction of calls the access log writes")
    request_log: Path | None = setting(
        None,
        help="record sampled successful predictions in this directory as TF Serving "
        "PredictionLog TFRecord files (usable as the next export's "
        "assets.extra/tf_serving_warmup_requests)",
    )  # fmt: skip
    request_log_sample: float = setting(1.0, help="fraction of successful predictions recorded")
    request_log_max_bytes: int = setting(
        64 << 20, shown_default="64 MiB", help="start a new request log file past this size"
    )
    request_log_max_files: int = setting(10, help="request log files kept; the oldest are deleted")
    request_log_queue_bytes: int = setting(
        64 << 20, shown_default="64 MiB",
        help="tensor bytes of sampled calls waiting for the request log's writer; a call past "
        "it is not recorded (counted as dropped), so a burst of large requests cannot pile up "
        "memory",
    )  # fmt: skip
    request_log_responses: bool = setting(
        False, help="record the outputs too (PredictLog.response)"
    )
    otel: bool = setting(
        False,
        help="export OpenTelemetry traces (a span per RPC) over OTLP/gRPC, configured by the "
        "OTEL_EXPORTER_OTLP_* environment variables; needs the optional extra 'otel'",
        doc="see [Metrics](operations.md#metrics); `make setup` installs the extra (from a "
        "clone: `pip install -c requirements-runtime.lock ./client '.[cpu,otel]'`)",
    )  # fmt: skip
    session: SessionSettings = field(default_factory=SessionSettings)
    """TensorFlow session options."""

    def loaded_at_start(self, names: set[str]) -> set[str]:
        """Which of the repository's model ``names`` load at start (``--startup-models``)."""
        if self.startup_models is None:
            return names
        listed = {n.strip() for n in self.startup_models.split(",") if n.strip()}
        return names if "*" in listed else listed

    def validate(self) -> Settings:
        """Checks every field; returns self so it can be chained.

        Raises:
            SettingsError: naming the first bad setting.
        """
        if not self.models and self.model_repository is None:
            raise SettingsError(
                "no model configured: pass --config FILE, or --model-name and --export-root"
            )
        names = set()
        for m in self.models:
            m.validate()
            if m.name in names:
                raise SettingsError(f"model name {m.name!r} is configured twice")
            names.add(m.name)
        if not 0 <= self.port <= 65535:
            raise SettingsError(f"port must be 0-65535, got {self.port}")
        if self.metrics_port is not None and not 0 <= self.metrics_port <= 65535:
            raise SettingsError(f"metrics port must be 0-65535, got {self.metrics_port}")
        if self.max_concurrent_rpcs is not None and self.max_concurrent_rpcs < 1:
            raise SettingsError(f"max concurrent rpcs must be >= 1, got {self.max_concurrent_rpcs}")
        for what, threads in (("grpc", self.grpc_threads), ("active", self.active_threads)):
            if threads < 1:
                raise SettingsError(f"{what} threads must be >= 1, got {threads}")
        if self.max_admin_rpcs < 1:
            raise SettingsError(f"max admin rpcs must be >= 1, got {self.max_admin_rpcs}")
        parse_channel_arguments(self.grpc_channel_arguments)
        if self.rest_timeout_seconds is not None and not self.rest_timeout_seconds > 0:
            raise SettingsError(
                f"rest timeout seconds must be > 0, got {self.rest_timeout_seconds}"
            )
        if self.max_message_bytes < 1024:
            raise SettingsError(f"max message bytes must be >= 1024, got {self.max_message_bytes}")
        for name, value in (("admin token", self.admin_token), ("token", self.token)):
            if value is not None and (len(value) < 16 or not value.isprintable() or " " in value):
                raise SettingsError(f"{name} must be at least 16 printable characters, no spaces")
        if (self.tls_cert is None) != (self.tls_key is None):
            raise SettingsError("TLS needs both a certificate and a key (--tls-cert, --tls-key)")
        if self.tls_client_ca is not None and self.tls_cert is None:
            raise SettingsError("--tls-client-ca needs --tls-cert and --tls-key")
        for name, tls_path in (
            ("tls cert", self.tls_cert),
            ("tls key", self.tls_key),
            ("tls client ca", self.tls_client_ca),
        ):
            if tls_path is not None and not os.access(tls_path, os.R_OK):
                raise SettingsError(f"{name} {tls_path} is not a readable file")
        if self.grace_seconds < 0:
            raise SettingsError(f"grace seconds must be >= 0, got {self.grace_seconds}")
        self._validate_connections()
        for name in (
            "handshake_timeout_seconds",
            "max_connection_idle_seconds",
            "keepalive_seconds",
        ):
            if getattr(self, name) < 0:
                raise SettingsError(f"{name.replace('_', ' ')} must be >= 0")
        if self.handshake_timeout_seconds == 0:
            raise SettingsError("handshake timeout seconds must be > 0")
        if self.rest_port is not None and not 0 <= self.rest_port <= 65535:
            raise SettingsError(f"rest port must be from 0 to 65535, got {self.rest_port}")
        self._validate_sources()
        self._validate_logs()
        if self.drain_seconds < 0:
            raise SettingsError(f"drain seconds must be >= 0, got {self.drain_seconds}")
        if self.session.intra_op_threads < 0 or self.session.inter_op_threads < 0:
            raise SettingsError("session thread counts must be >= 0")
        if self.session.run_thread not in RUN_THREADS:
            raise SettingsError(
                f"run thread must be one of {', '.join(RUN_THREADS)}, "
                f"got {self.session.run_thread!r}"
            )
        return self

    def _validate_connections(self) -> None:
        """Connection caps, HTTP timeouts and body limits are positive."""
        for name in ("max_http_connections", "max_grpc_connections"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise SettingsError(f"{name.replace('_', ' ')} must be >= 1, got {value}")
        for name in (
            "http_header_timeout_seconds",
            "http_body_timeout_seconds",
            "http_idle_timeout_seconds",
        ):
            if not getattr(self, name) > 0:
                raise SettingsError(f"{name.replace('_', ' ')} must be > 0")
        if self.max_http_body_bytes < 1024:
            raise SettingsError(
                f"max http body bytes must be >= 1024, got {self.max_http_body_bytes}"
            )
        if self.http_body_memory_bytes < self.max_http_body_bytes:
            raise SettingsError(
                "http body memory bytes must be >= max http body bytes "
                f"({self.http_body_memory_bytes} < {self.max_http_body_bytes})"
            )

    def _validate_logs(self) -> None:
        """Sampling rates are fractions; the request log's bounds are positive."""
        for name in ("access_log_sample", "request_log_sample"):
            if not 0 < getattr(self, name) <= 1:
                raise SettingsError(
                    f"{name.replace('_', ' ')} must be in (0, 1], got {getattr(self, name)}"
                )
        if self.request_log_queue_bytes < 1024:
            raise SettingsError("request log queue bytes must be >= 1024")
        if self.request_log_max_bytes < 1024 or self.request_log_max_files < 1:
            raise SettingsError("request log max bytes must be >= 1024 and max files >= 1")
        if self.request_log is not None and self.request_log.is_file():
            raise SettingsError(f"request log {self.request_log} is not a directory")

    def _validate_sources(self) -> None:
        """Polling needs something to poll; REST metrics need the REST port."""
        if self.config_poll_seconds is not None:
            if not self.config_poll_seconds >= 0:
                raise SettingsError(
                    f"config poll seconds must be >= 0, got {self.config_poll_seconds}"
                )
            if self.config_path is None and self.model_repository is None:
                raise SettingsError("--config-poll-seconds needs --config or --model-repository")
        if self.startup_models is not None:
            if self.model_repository is None:
                raise SettingsError("--startup-models needs --model-repository")
            known = {m.name for m in self.models}
            unknown = sorted(self.loaded_at_start(known) - known)
            if unknown:
                raise SettingsError(
                    f"--startup-models: {', '.join(unknown)} not in model repository "
                    f"{self.model_repository} (or its config.pbtxt is invalid: see above)"
                )
        if self.config_settle_seconds < 0:
            raise SettingsError(
                f"config settle seconds must be >= 0, got {self.config_settle_seconds}"
            )
        if self.rest_metrics_path is not None:
            if self.rest_port is None:
                raise SettingsError("metrics on the REST port need --rest-port")
            if not self.rest_metrics_path.startswith("/") or self.rest_metrics_path.startswith(
                ("/v1/", "/v2")
            ):
                raise SettingsError(
                    f"REST metrics path {self.rest_metrics_path!r} must start with '/' and not "
                    "with /v1/ or /v2 (the APIs' own paths)"
                )
