"""TensorFlow Serving's ``ModelServerConfig`` (``model_config_list``) as swapserve settings.

``HandleReloadConfigRequest`` carries one, and ``--config`` / ``--model_config_file`` may name one
in protobuf text format (``parse_text``); the fields TF Serving's config has (name, base_path,
model_platform, model_version_policy, version_labels) map onto ``ModelSettings``, and the options it
lacks (polling, batching, warm-up) keep the values the model has.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

from swapserve.apis import tfserving
from swapserve.config import text_proto
from swapserve.config.model_settings import (
    ALL_VERSIONS,
    BatchingSettings,
    ModelSettings,
    SettingsError,
    VersionPolicy,
)
from swapserve.errors import InvalidArgument


def model_settings(
    config: Any,
    current: Callable[[str], ModelSettings | None],
) -> tuple[ModelSettings, ...]:
    """A ``model_config_list`` as model settings: name, base_path, model_version_policy and
    version_labels come from the config; options TF Serving's config does not carry (polling,
    batching, warm-up) stay as the model has them (defaults for a new model).

    Raises:
        InvalidArgument: another kind of config, or an invalid entry (named).
    """
    if config.WhichOneof("config") != "model_config_list":
        raise InvalidArgument("only model_config_list configs are supported")
    out = []
    for i, entry in enumerate(config.model_config_list.config):
        where = f"model_config_list.config[{i}]"
        if not entry.name or not entry.base_path:
            raise InvalidArgument(f"{where}: name and base_path are required")
        if entry.model_platform not in ("", "tensorflow"):
            raise InvalidArgument(
                f"{where}: model_platform {entry.model_platform!r} is not served here "
                "(use 'tensorflow')"
            )
        base = current(entry.name) or ModelSettings(entry.name, Path())
        policy = entry.model_version_policy
        choice = policy.WhichOneof("policy_choice")
        if choice == "specific":
            versions = VersionPolicy(specific=tuple(int(v) for v in policy.specific.versions))
        elif choice == "all":
            versions = VersionPolicy(latest=ALL_VERSIONS)
        else:
            latest = policy.latest.num_versions if choice == "latest" else 1
            versions = VersionPolicy(latest=latest or 1)
        fields = {
            f.name: getattr(base, f.name)
            for f in dataclasses.fields(base)
            if f.name not in ("name", "export_root", "remote", "versions", "labels")
        }
        settings = ModelSettings.at(
            entry.name,
            entry.base_path,
            versions=versions,
            labels=dict(entry.version_labels),
            **fields,
        )
        try:
            settings.validate()
        except SettingsError as err:
            raise InvalidArgument(f"{where}: {err}") from None
        out.append(settings)
    names = [m.name for m in out]
    if len(set(names)) != len(names):
        raise InvalidArgument(f"a model is listed twice in model_config_list: {names}")
    return tuple(out)


def parse_text(
    text: str, where: str, defaults: ModelSettings | None = None
) -> tuple[ModelSettings, ...]:
    """Models of a ``ModelServerConfig`` in protobuf text format (TF Serving's
    ``--model_config_file``); ``defaults`` gives what the format cannot say (polling, warm-up).

    Raises:
        SettingsError: a syntax error or unknown field (with its line and column), or an
            invalid entry (named by its index).
    """
    config = tfserving.ModelServerConfig()
    text_proto.parse(text, config, where)
    try:
        return model_settings(config, lambda _: defaults)
    except InvalidArgument as err:
        raise SettingsError(f"{where}: {err.message}") from None


BATCHING_KEYS = ("max_batch_size", "batch_timeout_micros", "max_enqueued_batches",
                 "num_batch_threads")  # fmt: skip
"""The fields that map onto swapserve's batching settings of the same names."""


def parse_batching_parameters(text: str, where: str) -> tuple[dict[str, int], tuple[int, ...]]:
    """TF Serving's ``--batching_parameters_file``: the batching settings it sets, and its
    ``allowed_batch_sizes``.

    Raises:
        SettingsError: a syntax error or unknown field (line and column), or an option swapserve
            cannot honour (``pad_variable_length_inputs``, large-batch splitting).
    """
    params = tfserving.BatchingParameters()
    text_proto.parse(text, params, where)
    if params.pad_variable_length_inputs:
        raise SettingsError(
            f"{where}: pad_variable_length_inputs: true is not supported: requests batch only "
            "with requests of the same shape after the first dimension; pad on the client"
        )
    if params.enable_large_batch_splitting.value:
        raise SettingsError(
            f"{where}: enable_large_batch_splitting: true is not supported: a request over "
            "max_batch_size gets INVALID_ARGUMENT; split it on the client"
        )
    values = {k: int(getattr(params, k).value) for k in BATCHING_KEYS if params.HasField(k)}
    return values, tuple(int(v) for v in params.allowed_batch_sizes)


VERSION_BATCHING_FILE = "batching_params.pbtxt"
"""TF Serving's per-model batching file, in the version (SavedModel) directory."""


def version_batching(path: Path, base: BatchingSettings) -> BatchingSettings:
    """``--enable_per_model_batching_parameters``: the batching of the version at ``path`` from
    its ``batching_params.pbtxt`` (batching on, TF Serving's timing when it sets a timeout; the
    rest from ``base``), or ``base`` when it has none.

    Raises:
        SettingsError: an unreadable or invalid file (the version fails to load, saying why).
    """
    file = path / VERSION_BATCHING_FILE
    if not file.is_file():
        return base
    try:
        text = file.read_text()
    except (OSError, UnicodeDecodeError) as err:
        raise SettingsError(f"cannot read {file}: {err}") from None
    values, allowed = parse_batching_parameters(text, str(file))
    mode = "timeout" if "batch_timeout_micros" in values else base.mode
    fields: dict[str, Any] = {**values, "enabled": True, "mode": mode}
    if allowed:
        fields["allowed_batch_sizes"] = allowed
    chosen = dataclasses.replace(base, **fields)
    chosen.validate()
    return chosen


PROMETHEUS_PATH = "/monitoring/prometheus/metrics"
"""TF Serving's metrics path when ``prometheus_config`` names none."""


def parse_monitoring_config(text: str, where: str) -> str | None:
    """TF Serving's ``--monitoring_config_file``: the path to serve Prometheus metrics at on the
    REST port, or None when ``prometheus_config`` is not enabled.

    Raises:
        SettingsError: a syntax error or unknown field (line and column), or a path that does
            not start with '/'.
    """
    config = tfserving.MonitoringConfig()
    text_proto.parse(text, config, where)
    prometheus = config.prometheus_config
    if not prometheus.enable:
        return None
    path = prometheus.path or PROMETHEUS_PATH
    if not path.startswith("/"):
        raise SettingsError(f"{where}: prometheus_config.path {path!r} must start with '/'")
    return str(path)


def write_ssl_config(text: str, where: str, directory: Path) -> dict[str, Path]:
    """TF Serving's ``--ssl_config_file`` (``SSLConfig``: PEM texts inline) as our TLS files,
    written into ``directory`` (private to this user): ``cert``, ``key`` and, when it asks to
    verify clients, ``client_ca``.

    Raises:
        SettingsError: a syntax error, a missing key or certificate, or client verification
            without a CA.
    """
    config = tfserving.SSLConfig()
    text_proto.parse(text, config, where)
    if not config.server_key or not config.server_cert:
        raise SettingsError(f"{where}: server_key and server_cert are both needed")
    if config.client_verify and not config.custom_ca:
        raise SettingsError(f"{where}: client_verify: true needs custom_ca to verify clients by")
    files = {"key": config.server_key, "cert": config.server_cert}
    if config.client_verify:
        files["client_ca"] = config.custom_ca
    out = {}
    for name, pem in files.items():
        path = directory / f"{name}.pem"
        path.touch(mode=0o600)
        path.write_text(pem)
        out[name] = path
    return out
