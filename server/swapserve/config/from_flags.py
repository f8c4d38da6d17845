"""Parsed flags -> validated ``Settings``: the one-model flags, a config file (``--config``) or a
model repository (``--model-repository``), merged with the config file's ``server`` keys."""

from __future__ import annotations

import argparse
import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from swapserve.config.declare import Declared, declared
from swapserve.config.flags import all_declared, build_parser, kind
from swapserve.config.model_lists import RepositorySource, with_batching
from swapserve.config.model_settings import (
    BatchingSettings,
    ModelSettings,
    SessionSettings,
    SettingsError,
    VersionPolicy,
)
from swapserve.config.rollout_settings import RolloutSettings
from swapserve.config.settings import Settings
from swapserve.config.yaml_file import ConfigFile, is_text_config, load_config


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


def _value(d: Declared, args: argparse.Namespace) -> Any:
    """A declared setting's value from the parsed flags, converted to its field's type."""
    raw = getattr(args, d.dest)
    how = kind(d)
    if how == "sizes":
        return _sizes(raw, d.option)
    if how == "labels":
        return _labels(raw)
    if how == "secret":
        return _secret(raw, d.flag.from_env)
    return raw


def _fields(owner: type, args: argparse.Namespace, skip: Sequence[str] = ()) -> dict[str, Any]:
    """Every declared field of ``owner`` from the parsed flags."""
    return {d.field.name: _value(d, args) for d in declared(owner) if d.field.name not in skip}


# Flags that only the one-model form may set: a config file sets them per model, and a
# repository per model in config.pbtxt.
_IDENTITY = ("name", "export_root", "labels")
_MODEL_ONLY = tuple(
    d.dest for d in (*declared(ModelSettings), *declared(VersionPolicy))
    if d.owner is VersionPolicy or d.field.name in _IDENTITY
)  # fmt: skip
# Options of every model of a repository (or of TF Serving's text config) that its file cannot set.
_REPOSITORY_BASE = tuple(
    d.dest
    for d in (*declared(ModelSettings), *declared(RolloutSettings))
    if d.field.name not in _IDENTITY
)  # a YAML file sets rollout per model; TF Serving's and Triton's get the flags' values


def _given(args: argparse.Namespace, parser: argparse.ArgumentParser, names: Sequence[str]) -> str:
    """The first of ``names`` set to something other than its default, as a flag ("": none)."""
    options = {d.dest: d.option for d in all_declared()}
    for name in names:
        if getattr(args, name) != parser.get_default(name):
            return options.get(name, "--" + name.replace("_", "-"))
    return ""


def _one_model(args: argparse.Namespace, name: str, root: str) -> ModelSettings:
    return ModelSettings.at(
        name,
        root,
        **_fields(ModelSettings, args, skip=("name", "export_root")),
        batching=BatchingSettings(**_fields(BatchingSettings, args)),
        versions=VersionPolicy(**_fields(VersionPolicy, args)),
        rollout=RolloutSettings(**_fields(RolloutSettings, args)),
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
        model = _one_model(args, args.model_name, args.export_root)
        # A model added later (HandleReloadConfigRequest) gets the flags' options too.
        return ConfigFile((model,)), dataclasses.replace(model, name="defaults")
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
    root = args.model_repository
    if not root.is_dir():
        raise SettingsError(f"--model-repository {root}: not a directory")
    return ConfigFile(RepositorySource(root, defaults)()), defaults


def _text_format(path: Path) -> bool:
    """TF Serving's text format: the flags' polling and warm-up apply to its models, as in TF
    Serving (a YAML file sets them per model)."""
    try:
        return is_text_config(path.read_text())
    except (OSError, UnicodeDecodeError):
        return False  # load_config reports it


def _secret(path: Path | None, env: str) -> str | None:
    if path is not None:
        try:
            return path.read_text(encoding="utf-8").strip()
        except OSError as err:
            raise SettingsError(f"cannot read token file {path}: {err.strerror}") from None
        except UnicodeDecodeError:  # the message would quote a byte of the secret
            raise SettingsError(f"token file {path} is not UTF-8") from None
    return os.environ.get(env) or None


def settings_from_args(
    args: argparse.Namespace, parser: argparse.ArgumentParser | None = None
) -> Settings:
    """Turns parsed flags (and the config file they name) into validated settings; a server key
    of the config file applies where its flag was left at the default."""
    if parser is None:
        parser = build_parser()
    config, defaults = _config(args, parser)
    server = _fields(Settings, args)
    for key, value in config.server.items():
        (d,) = (d for d in declared(Settings) if d.field.name == key)
        if getattr(args, d.dest) == parser.get_default(d.dest):
            server[key] = value
    return Settings(
        models=config.models,
        model_defaults=defaults,
        session=SessionSettings(**_fields(SessionSettings, args)),
        **server,
    ).validate()
