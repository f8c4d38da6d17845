"""A served model's settings: where its versions come from, which are served, how they are
polled, batched and run -- each declared once with its flag (``swapserve.config.declare``), so
the one-model flags, the config file's model keys and the docs' flag table derive from them.
The config file, TF Serving's ``ModelServerConfig`` and Triton's ``config.pbtxt`` all build
these classes (``swapserve.config.yaml_file``, ``tfserving``, ``triton``).
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from swapserve.config.declare import flag, setting
from swapserve.config.rollout_settings import RolloutSettings, RolloutSettingsError

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

    intra_op_threads: int = setting(
        0, help="TensorFlow intra-op threads per session (one op's inner parallelism); 0: "
        "TensorFlow's choice (one per core)",
    )  # fmt: skip
    inter_op_threads: int = setting(
        0, help="TensorFlow inter-op threads per session (independent ops run concurrently); "
        "0: TensorFlow's choice",
    )  # fmt: skip
    saved_model_tags: str = setting(
        "serve", metavar="TAG,...",
        help="the MetaGraph to load from each SavedModel, by its comma-separated tag set (as TF "
        "Serving's --saved_model_tags)",
    )  # fmt: skip
    run_thread: str = setting(
        "auto", choices=("auto", "caller", "pool"),
        help="where a request's graph runs: TensorFlow's inter-op pool, the calling thread "
        "(no hand-off; best for small sequential graphs) or auto: each version times both at "
        "load and keeps the faster",
        doc="`caller` is the RPC (or batch) thread, `RunOptions.inter_op_thread_pool = -1`: no "
        "thread hand-off, no inter-op parallelism; `auto` times both on each version at load "
        "(zeros of one row, or of `max_batch_size` rows when the model batches; alternating, up "
        "to 30 calls or 0.3 s each) and keeps the faster, the caller thread winning ties within "
        "10%. A graph that writes state (assignments, table inserts, queues) or cannot take zero "
        "inputs is not timed and stays in the pool. The choice is in the version's \"loaded\" "
        "log line",
    )  # fmt: skip


BATCHING_MODES = ("eager", "timeout")


@dataclass(frozen=True)
class BatchingSettings:
    """Dynamic batching of concurrent requests (names as in TF Serving's batching config)."""

    enabled: bool = setting(
        False, name="--enable-batching",
        help="batch concurrent requests into one model run (dynamic batching, opt-in)",
        doc="see [Dynamic batching](configuration.md#dynamic-batching)",
    )  # fmt: skip
    max_batch_size: int = setting(
        32, help="most rows (dim 0) per batched run; a larger request gets INVALID_ARGUMENT"
    )
    batch_timeout_micros: int = setting(
        1000, help="with --batching-mode timeout: how long the first request of a batch waits "
        "for others",
    )  # fmt: skip
    max_enqueued_batches: int = setting(
        64, help="batches (open or waiting) per version; beyond, RESOURCE_EXHAUSTED at once"
    )
    num_batch_threads: int = setting(
        2, help="threads running batches concurrently (each version has its own)"
    )
    allowed_batch_sizes: tuple[int, ...] = setting(
        (), metavar="8,16,32", shown_default="none",
        help="comma-separated sizes batches are padded up to, so the model only sees these "
        "shapes (the last must equal --max-batch-size)",
    )  # fmt: skip
    preferred_batch_sizes: tuple[int, ...] = ()
    """Triton's ``preferred_batch_size``: a batch that reaches the largest of these rows runs at
    once instead of waiting out ``batch_timeout_micros``."""
    mode: str = setting(
        "eager", name="--batching-mode", choices=("eager", "timeout"),
        help="eager: a request runs at once when a batch thread is free, only requests arriving "
        "while all are busy are batched; timeout: TF Serving's batcher, a batch waits up to "
        "--batch-timeout-micros to fill",
    )  # fmt: skip

    def __str__(self) -> str:
        """For the start log: which batcher runs (nothing when batching is off)."""
        if not self.enabled:
            return ""
        return f" (batching: {self.mode}, up to {self.max_batch_size} rows)"

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


ALL_VERSIONS = 2**31
"""``latest`` meaning every version on disk (TF Serving's and Triton's ``all`` policy)."""


@dataclass(frozen=True)
class VersionPolicy:
    """Which versions of a model are loaded (as TF Serving's model_version_policy)."""

    latest: int = setting(
        1, help="one model: serve the N newest loadable versions; the newest answers requests "
        "without a version and clients may ask for any of them by number",
    )  # fmt: skip
    specific: tuple[int, ...] = setting(
        (), name="--specific-versions", metavar="3,5", shown_default="none",
        help="one model: serve exactly these comma-separated versions (those present and "
        "loadable) instead of the newest; the highest is the default",
    )  # fmt: skip

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
class TensorDeclaration:
    """An input or output a model's own config declares (a Triton ``config.pbtxt``)."""

    name: str
    dtype: int
    """TensorFlow DataType number (0: not declared)."""
    dims: tuple[int, ...]
    """-1: any size; without the batch dimension when ``DeclaredConfig.batch_dim``."""
    output: bool = False


@dataclass(frozen=True)
class DeclaredConfig:
    """What a model's own config says about its tensors, kept as written: each version's
    serving signature is checked against ``tensors`` before it serves, and the model config
    endpoints answer ``as_written`` for those keys rather than what swapserve derives."""

    tensors: tuple[TensorDeclaration, ...] = ()
    batch_dim: bool = False
    """The declared dims leave out the batch dimension (Triton's ``max_batch_size`` > 0)."""
    as_written: str = ""
    """A JSON object of the keys reported as written (``max_batch_size``, ``input``,
    ``output``, ``instance_group``); "": none."""


@dataclass(frozen=True)
class ModelSettings:
    """One served model."""

    name: str = field(
        metadata=flag(
            name="--model-name", shown_default="required without --config",
            help="one model: the name clients use for it",
        )
    )  # fmt: skip
    export_root: Path = field(
        metadata=flag(
        text=True, shown_default="required without --config",
        help="one model: directory of numeric version subdirectories (waited for if missing), "
        "or s3://bucket/prefix / gs://bucket/prefix (mirrored into $SWAPSERVE_CACHE_DIR)",
        doc="see [Export roots in object storage](configuration.md#export-roots-in-object-storage)",
        )
    )  # fmt: skip
    poll_seconds: float = setting(1.0, help="seconds between rescans of the export root")
    settle_seconds: float | None = setting(
        None, shown_default="one poll",
        help="seconds a version's file set (names, sizes, mtimes) must stay unchanged before it "
        "loads (default: one poll interval)",
    )  # fmt: skip
    reload_settle_seconds: float = setting(
        0.2, help="seconds between Reload's two scans that check a version is not still being "
        "written",
    )  # fmt: skip
    warm_up: bool = setting(
        True, name="--no-warm-up", negate=True,
        help="serve new versions without a warm-up run (TF Serving warm-up records, or a zero "
        "batch)",
    )  # fmt: skip
    batching: BatchingSettings = field(default_factory=BatchingSettings)
    """Dynamic batching (off by default)."""
    versions: VersionPolicy = field(default_factory=VersionPolicy)
    """Which versions are loaded (default: the newest one)."""
    rollout: RolloutSettings = field(default_factory=RolloutSettings)
    """The gates a new version must pass and its canary share (gates on, canary off)."""
    remote: str | None = None
    """An object-store export root (``s3://bucket/prefix``) mirrored into ``export_root``, which
    is then a local cache directory swapserve owns."""
    max_request_elements: int | None = setting(
        None, shown_default="no limit",
        help="one model: most input elements (all inputs together) one request may carry; more "
        "get INVALID_ARGUMENT before running (default: only --max-message-bytes limits them)",
    )  # fmt: skip
    labels: Mapping[str, int] = setting(
        factory=dict, name="--label", metavar="NAME=VERSION", shown_default="none",
        help="one model: a version label (e.g. stable, canary) clients may request instead of a "
        "number; a labelled version stays loaded whatever the policy (repeat for each label)",
    )  # fmt: skip

    declared: DeclaredConfig = field(default_factory=DeclaredConfig)
    """The tensors the model's own config declares (a Triton ``config.pbtxt``)."""

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
        try:
            self.rollout.validate()
        except RolloutSettingsError as err:
            raise SettingsError(f"{where}: {err}") from None
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
