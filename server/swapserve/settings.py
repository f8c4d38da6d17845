"""All server settings in one typed, validated place.

``swapserve``'s flags (``cli.py``) take their *defaults* from these classes, so a default is
written once; their help texts are written in ``cli.py`` (a test checks docs/configuration.md's
flag table against ``swapserve --help``). The config file (``config_file.py``) and TF Serving's
``ModelServerConfig`` (``tfserving_config.py``) build the same classes.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
_LABEL = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,127}$")


class SettingsError(ValueError):
    """A setting with an unusable value; the message names it."""


RUN_THREADS = ("auto", "caller", "pool")
REMOTE_SCHEMES = ("s3://", "gs://", "gcs://")


def is_remote(root: str) -> bool:
    """True for an object-store URL (``s3://``, ``gs://``)."""
    return root.startswith(REMOTE_SCHEMES)


def cache_dir(model: str) -> Path:
    """Where a remote export root is mirrored: ``$SWAPSERVE_CACHE_DIR/<model>`` (default: the
    system temp directory's ``swapserve-cache``)."""
    base = os.environ.get("SWAPSERVE_CACHE_DIR") or os.path.join(
        tempfile.gettempdir(), "swapserve-cache"
    )
    return Path(base) / model


@dataclass(frozen=True)
class SessionSettings:
    """TensorFlow session options for every loaded version."""

    intra_op_threads: int = 0
    """Threads for one op's inner parallelism; 0 lets TensorFlow choose (one per core)."""
    inter_op_threads: int = 0
    """Threads running independent ops concurrently; 0 lets TensorFlow choose."""
    run_thread: str = "auto"
    """Where a request's graph runs: ``pool`` (TensorFlow's inter-op pool), ``caller`` (the RPC
    or batch thread, RunOptions.inter_op_thread_pool = -1: no thread hand-off, no inter-op
    parallelism) or ``auto`` (each version times both at load and keeps the faster)."""


BATCHING_MODES = ("eager", "timeout")


@dataclass(frozen=True)
class BatchingSettings:
    """Dynamic batching of concurrent requests (names as in TF Serving's batching config)."""

    enabled: bool = False
    """Batch concurrent requests to this model (opt-in)."""
    max_batch_size: int = 32
    """Most rows (dim 0) in one model run; a larger request is rejected with INVALID_ARGUMENT."""
    batch_timeout_micros: int = 1000
    """Mode ``timeout``: how long the first request of a batch waits for others."""
    max_enqueued_batches: int = 64
    """Batches (open or waiting) per version; past it requests get RESOURCE_EXHAUSTED at once."""
    num_batch_threads: int = 2
    """Threads running batches concurrently (each version has its own)."""
    allowed_batch_sizes: tuple[int, ...] = ()
    """If set, batches are padded up to the next of these sizes (the last must equal
    max_batch_size), so the model only ever sees these shapes."""
    preferred_batch_sizes: tuple[int, ...] = ()
    """Triton's ``preferred_batch_size``: a batch that reaches the largest of these rows runs at
    once instead of waiting out ``batch_timeout_micros``."""
    mode: str = "eager"
    """``eager``: run at once when a batch slot is free, batch only what arrives while all are
    busy (``batch_timeout_micros`` unused); ``timeout``: TF Serving's, a batch waits to fill."""

    def validate(self) -> None:
        """Raises SettingsError naming the first bad field."""
        lowest = {"max_batch_size": 1, "batch_timeout_micros": 0, "max_enqueued_batches": 1,
                  "num_batch_threads": 1}  # fmt: skip
        for name, low in lowest.items():
            if getattr(self, name) < low:
                raise SettingsError(f"{name} must be >= {low}, got {getattr(self, name)}")
        if self.mode not in BATCHING_MODES:
            raise SettingsError(f"batching mode must be eager or timeout, got {self.mode!r}")
        preferred = self.preferred_batch_sizes
        if any(not 1 <= p <= self.max_batch_size for p in preferred):
            raise SettingsError(
                f"preferred_batch_sizes must be from 1 to max_batch_size ({self.max_batch_size}), "
                f"got {list(preferred)}"
            )
        sizes = self.allowed_batch_sizes
        if sizes:
            if list(sizes) != sorted(set(sizes)) or sizes[0] < 1:
                raise SettingsError(
                    f"allowed_batch_sizes must be increasing positive sizes, got {list(sizes)}"
                )
            if sizes[-1] != self.max_batch_size:
                raise SettingsError(
                    f"the last allowed_batch_sizes entry ({sizes[-1]}) must equal "
                    f"max_batch_size ({self.max_batch_size})"
                )


MAX_VERSION = 2**63 - 1
"""The largest version number: every protocol carries versions as int64 (TF Serving's
``ModelSpec.version``, our ``version`` fields) or as text clients parse into one."""


@dataclass(frozen=True)
class VersionPolicy:
    """Which versions of a model are loaded (as TF Serving's model_version_policy)."""

    latest: int = 1
    """Serve the N newest loadable versions; the newest answers requests without a version and
    clients may ask for any of them by number."""
    specific: tuple[int, ...] = ()
    """If set, exactly these versions (those present and loadable); the highest is the default."""

    def validate(self, model: str) -> None:
        """Raises SettingsError naming the bad field."""
        if self.latest < 1:
            raise SettingsError(f"model '{model}': versions.latest must be >= 1, got {self.latest}")
        if any(not 1 <= v <= MAX_VERSION for v in self.specific):
            raise SettingsError(
                f"model '{model}': versions.specific must list versions from 1 to "
                f"{MAX_VERSION}, got {list(self.specific)}"
            )


@dataclass(frozen=True)
class ModelSettings:
    """One served model."""

    name: str
    """Name clients use in requests."""
    export_root: Path
    """Directory holding one numeric subdirectory per exported version."""
    poll_seconds: float = 1.0
    """How often the export root is rescanned for new versions."""
    settle_seconds: float | None = None
    """How long a version's file set (names + sizes + mtimes) must stay unchanged before it is
    loaded; None means one poll interval."""
    reload_settle_seconds: float = 0.2
    """Reload's own settle check: a version is scanned twice this far apart before loading."""
    warm_up: bool = True
    """Warm up each version before it serves (TF Serving warm-up records, or a zero batch)."""
    batching: BatchingSettings = field(default_factory=BatchingSettings)
    """Dynamic batching (off by default)."""
    versions: VersionPolicy = field(default_factory=VersionPolicy)
    """Which versions are loaded (default: the newest one)."""
    remote: str | None = None
    """An object-store export root (``s3://bucket/prefix``) mirrored into ``export_root``, which
    is then a local cache directory swapserve owns."""
    max_request_elements: int | None = None
    """Most input elements (all inputs together) one request may carry; larger requests get
    INVALID_ARGUMENT before they run. None: only the message size limits them."""
    labels: Mapping[str, int] = field(default_factory=dict)
    """Version labels (e.g. ``stable``/``canary``) clients may request instead of a number; a
    labelled version is kept loaded whatever the version policy says."""

    @classmethod
    def at(cls, name: str, root: str, **fields: Any) -> ModelSettings:
        """A model served from ``root`` as a user wrote it: a local directory, or an
        ``s3://``/``gs://`` URL mirrored into its cache directory (``cache_dir``). The one place
        that maps an export root to settings (flags, config file, TF Serving configs).

        Args:
            name: the model's name.
            root: the export root as written.
            fields: any other ``ModelSettings`` field.
        """
        if is_remote(root):
            return cls(name, cache_dir(name), remote=root, **fields)
        return cls(name, Path(root), remote=None, **fields)

    def validate(self) -> None:
        """Raises SettingsError naming the model and its first bad setting."""
        if not _MODEL_NAME.match(self.name):
            raise SettingsError(
                f"model name {self.name!r}: use 1-128 letters, digits, '_', '.', '-' "
                "(starting with a letter or digit)"
            )
        where = f"model '{self.name}'"
        root = self.export_root
        if root.exists() and not root.is_dir():
            raise SettingsError(f"{where}: export root {root} is not a directory")
        if root.is_dir() and not os.access(root, os.R_OK | os.X_OK):
            raise SettingsError(f"{where}: export root {root} is not readable")
        if not self.poll_seconds > 0:
            raise SettingsError(f"{where}: poll seconds must be > 0, got {self.poll_seconds}")
        if self.settle_seconds is not None and self.settle_seconds < 0:
            raise SettingsError(f"{where}: settle seconds must be >= 0, got {self.settle_seconds}")
        if self.reload_settle_seconds < 0:
            raise SettingsError(
                f"{where}: reload settle seconds must be >= 0, got {self.reload_settle_seconds}"
            )
        if self.max_request_elements is not None and self.max_request_elements < 1:
            raise SettingsError(
                f"{where}: max request elements must be >= 1, got {self.max_request_elements}"
            )
        self.batching.validate()
        self.versions.validate(self.name)
        for label, version in self.labels.items():
            if not _LABEL.match(label):
                raise SettingsError(
                    f"{where}: label {label!r}: use letters, digits, '_', '.', '-', starting "
                    "with a letter (a label must not look like a version number)"
                )
            if (
                not isinstance(version, int)
                or isinstance(version, bool)
                or not 1 <= version <= MAX_VERSION
            ):
                raise SettingsError(
                    f"{where}: label {label!r} must name a version from 1 to {MAX_VERSION}, "
                    f"got {version!r}"
                )

    @property
    def effective_settle_seconds(self) -> float:
        """The settle period in force."""
        return self.poll_seconds if self.settle_seconds is None else self.settle_seconds


@dataclass(frozen=True)
class Settings:
    """The whole server."""

    models: tuple[ModelSettings, ...]
    """The models served."""
    config_path: Path | None = None
    """The config file the models came from (re-read on SIGHUP and HandleReloadConfigRequest)."""
    model_repository: Path | None = None
    """A Triton-layout model repository the models came from: every subdirectory is a model
    (``triton_config.py``); rescanned like a config file."""
    model_defaults: ModelSettings | None = None
    """Options from the flags for models the config or repository does not fully describe: a
    repository model's polling, settle times, warm-up and limits, and, with
    ``--enable-batching``, the batching of every model that does not batch by its own config."""
    config_poll_seconds: float | None = None
    """Re-read the config file (or rescan the repository) this often and apply what changed, as
    SIGHUP does; None: only on SIGHUP and HandleReloadConfigRequest."""
    rest_metrics_path: str | None = None
    """Also serve the Prometheus metrics at this path of the REST port (TF Serving's
    ``--monitoring_config_file``)."""
    otel: bool = False
    """Export OpenTelemetry traces (a span per RPC) over OTLP; needs the ``otel`` extra."""
    access_log: bool = False
    """Log one line per call on the ``swapserve.access`` logger (``access_log.py``)."""
    access_log_sample: float = 1.0
    """The fraction of calls the access log writes."""
    request_log: Path | None = None
    """Directory to record sampled predictions in as TF Serving ``PredictionLog`` TFRecord files
    (``request_log.py``); None: off."""
    request_log_sample: float = 1.0
    """The fraction of successful predictions recorded."""
    request_log_max_bytes: int = 64 << 20
    """Size at which a request log file is closed and a new one started."""
    request_log_max_files: int = 10
    """Request log files kept; the oldest are deleted."""
    request_log_responses: bool = False
    """Record the outputs too (``PredictLog.response``)."""
    host: str = "0.0.0.0"  # noqa: S104 (a server listens on all interfaces unless told otherwise)
    """Address to listen on."""
    port: int = 8500
    """Port to listen on; 0 picks a free one (tests)."""
    rest_port: int | None = None
    """Port of the HTTP/1.1 API (TF Serving's REST API, health) on ``host``; None: off, 0: any
    free port."""
    metrics_port: int | None = None
    """Port of the Prometheus ``/metrics`` endpoint on ``host``; None: off, 0: any free port."""
    max_concurrent_rpcs: int | None = None
    """RPCs handled at once; beyond it new RPCs get RESOURCE_EXHAUSTED at once. None: no limit."""
    grpc_threads: int = 16
    """Threads serving RPCs; TensorFlow releases the GIL, so model runs overlap."""
    max_admin_rpcs: int = 4
    """Admin calls (Reload, load, unload, config reload) handled at once. The gRPC pool gets
    this many threads on top of ``grpc_threads``, so admin calls never take a prediction's
    thread; more admin calls get RESOURCE_EXHAUSTED at once."""
    handshake_timeout_seconds: float = 10.0
    """A connection that has not completed its TLS and HTTP/2 handshake (the client preface)
    within this is closed: silent sockets cannot pile up file descriptors."""
    max_connection_idle_seconds: float = 300.0
    """A connection with no RPC for this long is sent GOAWAY and closed (clients reconnect on
    their next call); 0 keeps idle connections open."""
    keepalive_seconds: float = 60.0
    """The server pings a connection idle this long, and closes it if the ping is not answered
    within 20 s (peers that vanished without a FIN); 0 turns it off."""
    max_message_bytes: int = 256 * 1024 * 1024
    """Largest request or response message accepted."""
    grace_seconds: float = 10.0
    """On SIGTERM/SIGINT, how long in-flight requests may take to finish."""
    drain_seconds: float = 5.0
    """On SIGTERM, how long the server keeps serving with health NOT_SERVING before it refuses
    new requests, so load balancers and clients move away first (SIGINT skips it)."""
    allow_remote_admin: bool = False
    """Accept admin RPCs (Reload) from non-loopback peers without a token."""
    admin_token: str | None = field(default=None, repr=False)
    """Bearer token admin RPCs need (from any peer); None: loopback peers only."""
    token: str | None = field(default=None, repr=False)
    """Bearer token every other RPC needs (health and reflection excepted); None: open."""
    tls_cert: Path | None = None
    """PEM certificate chain of the server; with ``tls_key``, the port speaks TLS only."""
    tls_key: Path | None = None
    """PEM private key of ``tls_cert``."""
    tls_client_ca: Path | None = None
    """PEM CA bundle; when set, clients must present a certificate it signed (mutual TLS)."""
    session: SessionSettings = field(default_factory=SessionSettings)
    """TensorFlow session options."""

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
        if self.grpc_threads < 1:
            raise SettingsError(f"grpc threads must be >= 1, got {self.grpc_threads}")
        if self.max_admin_rpcs < 1:
            raise SettingsError(f"max admin rpcs must be >= 1, got {self.max_admin_rpcs}")
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

    def _validate_logs(self) -> None:
        """Sampling rates are fractions; the request log's bounds are positive."""
        for name in ("access_log_sample", "request_log_sample"):
            if not 0 < getattr(self, name) <= 1:
                raise SettingsError(
                    f"{name.replace('_', ' ')} must be in (0, 1], got {getattr(self, name)}"
                )
        if self.request_log_max_bytes < 1024 or self.request_log_max_files < 1:
            raise SettingsError("request log max bytes must be >= 1024 and max files >= 1")
        if self.request_log is not None and self.request_log.is_file():
            raise SettingsError(f"request log {self.request_log} is not a directory")

    def _validate_sources(self) -> None:
        """Polling needs something to poll; REST metrics need the REST port."""
        if self.config_poll_seconds is not None:
            if not self.config_poll_seconds > 0:
                raise SettingsError(
                    f"config poll seconds must be > 0, got {self.config_poll_seconds}"
                )
            if self.config_path is None and self.model_repository is None:
                raise SettingsError("--config-poll-seconds needs --config or --model-repository")
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
