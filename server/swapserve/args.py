"""Parsed flags -> validated ``Settings``: the one-model flags, a config file (``--config``) or a
model repository (``--model-repository``), merged with the config file's ``server`` keys."""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from pathlib import Path

from swapserve.config_file import SERVER_KEYS, ConfigFile, is_text_config, load_config
from swapserve.settings import (
    BatchingSettings,
    ModelSettings,
    SessionSettings,
    Settings,
    SettingsError,
    VersionPolicy,
)
from swapserve.sources import RepositorySource, with_batching


def _sizes(text: str, flag: str) -> tuple[int, ...]:
    try:
        return tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise SettingsError(f"{flag} {text!r}: expected numbers like 8,16,32") from None


def _labels(specs: Sequence[str]) -> dict[str, int]:
    labels = {}
    for spec in specs:
        name, sep, version = spec.partition("=")
        if not sep or not (version.strip().isascii() and version.strip().isdigit()):
            raise SettingsError(f"--label {spec!r}: expected NAME=VERSION, e.g. stable=3")
        labels[name.strip()] = int(version)
    return labels


# Flags that only the one-model form may set: a config file sets them per model, and a
# repository per model in config.pbtxt.
_MODEL_ONLY = ("model_name", "export_root", "latest", "specific_versions", "label")
# Options of every model of a repository (or of TF Serving's text config) that its file cannot set.
_REPOSITORY_BASE = ("max_request_elements", "poll_seconds", "settle_seconds",
                    "reload_settle_seconds", "warm_up")  # fmt: skip


def _given(args: argparse.Namespace, parser: argparse.ArgumentParser, names: Sequence[str]) -> str:
    """The first of ``names`` set to something other than its default, as a flag ("": none)."""
    for name in names:
        if getattr(args, name) != parser.get_default(name):
            return "--" + name.replace("_", "-")
    return ""


def _one_model(args: argparse.Namespace, name: str, root: str) -> ModelSettings:
    return ModelSettings.at(
        name,
        root,
        poll_seconds=args.poll_seconds,
        settle_seconds=args.settle_seconds,
        reload_settle_seconds=args.reload_settle_seconds,
        warm_up=args.warm_up,
        batching=BatchingSettings(
            enabled=args.enable_batching,
            max_batch_size=args.max_batch_size,
            batch_timeout_micros=args.batch_timeout_micros,
            mode=args.batching_mode,
            max_enqueued_batches=args.max_enqueued_batches,
            num_batch_threads=args.num_batch_threads,
            allowed_batch_sizes=_sizes(args.allowed_batch_sizes, "--allowed-batch-sizes"),
        ),
        versions=VersionPolicy(
            latest=args.latest,
            specific=_sizes(args.specific_versions, "--specific-versions"),
        ),
        labels=_labels(args.label),
        max_request_elements=args.max_request_elements,
    )


def _config(
    args: argparse.Namespace, parser: argparse.ArgumentParser
) -> tuple[ConfigFile, ModelSettings | None]:
    """The models to serve at start and the flags' defaults for config/repository models."""
    if args.config is not None and args.model_repository is not None:
        raise SettingsError("pass --config or --model-repository, not both")
    if args.config is None and args.model_repository is None:
        if args.model_name is None or args.export_root is None:
            raise SettingsError(
                "pass --config FILE, --model-repository DIR, or --model-name and --export-root"
            )
        return ConfigFile((_one_model(args, args.model_name, args.export_root),)), None
    source = "--config" if args.config is not None else "--model-repository"
    flag = _given(args, parser, _MODEL_ONLY)
    if args.config is not None and not _text_format(args.config):
        flag = flag or _given(args, parser, _REPOSITORY_BASE)
    if flag:
        raise SettingsError(
            f"{flag} describes the one model of the flags; with {source}, set it per model "
            f"in the {'config file' if args.config is not None else 'model config.pbtxt'}"
        )
    defaults = _one_model(args, "defaults", ".")
    batching = defaults.batching  # as with one model: applies with --enable-batching only
    batching.validate()
    if args.config is not None:
        config = load_config(args.config, defaults)
        return ConfigFile(with_batching(config.models, batching), config.server), defaults
    root = Path(args.model_repository)
    if not root.is_dir():
        raise SettingsError(f"--model-repository {root}: not a directory")
    return ConfigFile(RepositorySource(root, defaults)()), defaults


def _text_format(path: Path) -> bool:
    """TF Serving's text format: the flags' polling and warm-up apply to its models, as in TF
    Serving (a YAML file sets them per model)."""
    try:
        return is_text_config(path.read_text())
    except OSError:
        return False  # load_config reports it


def _secret(path: Path | None, env: str) -> str | None:
    if path is not None:
        try:
            return path.read_text().strip()
        except OSError as err:
            raise SettingsError(f"cannot read token file {path}: {err.strerror}") from None
    return os.environ.get(env) or None


def settings_from_args(
    args: argparse.Namespace, parser: argparse.ArgumentParser | None = None
) -> Settings:
    """Turns parsed flags (and the config file they name) into validated settings; a server key
    of the config file applies where its flag was left at the default."""
    if parser is None:
        from swapserve.cli import build_parser  # noqa: PLC0415 (cli imports this module)

        parser = build_parser()
    config, defaults = _config(args, parser)
    server = {key: getattr(args, key) for key in SERVER_KEYS}
    for key, value in config.server.items():
        if getattr(args, key) == parser.get_default(key):
            server[key] = value
    return Settings(
        models=config.models,
        config_path=args.config,
        model_repository=Path(args.model_repository) if args.model_repository else None,
        model_defaults=defaults,
        config_poll_seconds=args.config_poll_seconds,
        rest_metrics_path=args.rest_metrics_path,
        otel=args.otel,
        access_log=args.access_log,
        access_log_sample=args.access_log_sample,
        request_log=args.request_log,
        request_log_sample=args.request_log_sample,
        request_log_max_bytes=args.request_log_max_bytes,
        request_log_max_files=args.request_log_max_files,
        request_log_responses=args.request_log_responses,
        **server,
        allow_remote_admin=args.allow_remote_admin,
        admin_token=_secret(args.admin_token_file, "SWAPSERVE_ADMIN_TOKEN"),
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        tls_client_ca=args.tls_client_ca,
        token=_secret(args.token_file, "SWAPSERVE_TOKEN"),
        session=SessionSettings(args.intra_op_threads, args.inter_op_threads, args.run_thread),
    ).validate()
