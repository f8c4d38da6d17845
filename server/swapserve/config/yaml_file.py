"""The model config file (``--config swapserve.yaml``): the served models and their options.

A YAML mapping with ``models``: a list of mappings whose keys are ``ModelSettings``' fields
(``batching`` and ``versions`` are nested mappings of their own settings), and optionally
``server``: the listeners and limits of ``Settings`` (``SERVER_KEYS``), read at start only -- a
flag given on the command line wins over the file. The file is
checked completely before it is used, and every error names the key it is about, e.g.
``models[1].batching.max_batch_size: expected an integer, got 'x'``. A relative ``export_root``
is relative to the file's directory; an ``s3://`` or ``gs://`` one is mirrored into a cache
directory (``$SWAPSERVE_CACHE_DIR``). See docs/configuration.md for an example.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from swapserve.config import text_files
from swapserve.config.declare import declared
from swapserve.config.model_settings import ModelSettings, SettingsError, is_remote
from swapserve.config.settings import Settings

_TOP_LEVEL = ("models", "server")
_DERIVED = ("remote",)  # set from export_root, never written in the file
SERVER_KEYS = tuple(d.field.name for d in declared(Settings) if d.flag.server_key)
"""``Settings`` fields the ``server`` section may set: listeners and limits, no secrets (tokens
and TLS keys stay in files of their own, named by flags)."""


@dataclass(frozen=True)
class ConfigFile:
    """A parsed, validated config file."""

    models: tuple[ModelSettings, ...]
    server: Mapping[str, Any] = field(default_factory=dict)
    """The ``server`` keys the file sets, converted to their ``Settings`` types."""


def load_models(path: Path) -> tuple[ModelSettings, ...]:
    """Reads and validates a config file; its models.

    Raises:
        SettingsError: unreadable or invalid YAML, or a bad key or value (named in the message).
    """
    return load_config(path).models


def load_config(path: Path, defaults: ModelSettings | None = None) -> ConfigFile:
    """Reads and validates a config file: its models and server keys.

    Args:
        path: the file.
        defaults: options TF Serving's text format cannot carry (polling, settle times,
            warm-up, request limits) for its models, from the flags (YAML sets its own).

    Raises:
        SettingsError: unreadable or invalid YAML, or a bad key or value (named in the message).
    """
    text = text_files.read(path, "config file")
    if is_text_config(text):
        # TF Serving's ModelServerConfig in text format (protobuf: imported only for it).
        from swapserve.config.tfserving import parse_text  # noqa: PLC0415

        return ConfigFile(parse_text(text, path.name, defaults))
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise SettingsError(f"{path}: not valid YAML: {err}") from None
    except RecursionError:
        raise SettingsError(f"{path}: nested too deeply") from None
    return parse_config(data, path.name, base=path.parent)


def parse_models(data: Any, where: str, base: Path) -> tuple[ModelSettings, ...]:
    """Builds validated model settings from a parsed config document."""
    return parse_config(data, where, base).models


def parse_config(data: Any, where: str, base: Path) -> ConfigFile:
    """Builds validated settings from a parsed config document.

    Args:
        data: the YAML document.
        where: how errors name the document (the file name).
        base: the directory relative export roots are resolved against.
    """
    if not isinstance(data, dict):
        raise SettingsError(f"{where}: expected a mapping with a 'models' list")
    _check_keys(data, _TOP_LEVEL, where)
    models = data.get("models")
    if not isinstance(models, list) or not models:
        raise SettingsError(f"{where}: 'models' must be a non-empty list of models")
    out = []
    names: set[str] = set()
    for i, raw in enumerate(models):
        at = f"{where}: models[{i}]"
        model = _model(raw, at, base)
        try:
            model.validate()
        except SettingsError as err:
            raise SettingsError(f"{at}: {err}") from None
        if model.name in names:
            raise SettingsError(f"{at}: model name {model.name!r} is configured twice")
        names.add(model.name)
        out.append(model)
    return ConfigFile(tuple(out), _server(data.get("server", {}), f"{where}: server"))


def _server(raw: Any, where: str) -> dict[str, Any]:
    """The ``server`` section: each key converted to its ``Settings`` type (ranges are checked
    by ``Settings.validate`` once flags are merged in)."""
    if not isinstance(raw, dict):
        raise SettingsError(f"{where}: expected a mapping, got {_kind(raw)}")
    _check_keys(raw, SERVER_KEYS, where)
    hints = typing.get_type_hints(Settings)
    return {key: _value(hints[key], value, f"{where}.{key}") for key, value in raw.items()}


def _model(raw: Any, where: str, base: Path) -> ModelSettings:
    """One ``models`` entry; its export root goes through ``ModelSettings.at`` (a relative
    directory is relative to the file's directory; a URL is mirrored)."""
    if isinstance(raw, dict):
        for key in _DERIVED:
            if key in raw:
                raise SettingsError(
                    f"{where}: unknown key {key!r} (set export_root to an s3:// or gs:// URL)"
                )
    built = _build(ModelSettings, raw, where)
    root = raw["export_root"]
    if not is_remote(root):
        root = str(base / root)
    fields = {
        f.name: getattr(built, f.name)
        for f in dataclasses.fields(ModelSettings)
        if f.name not in ("name", "export_root", *_DERIVED)
    }
    return ModelSettings.at(built.name, root, **fields)


def _check_keys(data: Mapping[Any, Any], known: typing.Iterable[str], where: str) -> None:
    known = tuple(k for k in known if k not in _DERIVED)
    for key in data:
        if key not in known:
            raise SettingsError(f"{where}: unknown key {key!r} (known keys: {', '.join(known)})")


def _build(cls: type[Any], data: Any, where: str) -> Any:
    """A settings dataclass from a mapping, checking every key and value against its fields."""
    if not isinstance(data, dict):
        raise SettingsError(f"{where}: expected a mapping, got {_kind(data)}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    _check_keys(data, fields, where)
    hints = typing.get_type_hints(cls)
    kwargs = {key: _value(hints[key], value, f"{where}.{key}") for key, value in data.items()}
    for name, f in fields.items():
        no_default = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        if no_default and name not in kwargs:
            raise SettingsError(f"{where}: missing required key '{name}'")
    return cls(**kwargs)


def _value(tp: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        (inner,) = (a for a in args if a is not type(None))
        return _value(inner, value, where)
    if dataclasses.is_dataclass(tp):
        return _build(typing.cast(type[Any], tp), value, where)
    if tp is bool:
        if not isinstance(value, bool):
            raise SettingsError(f"{where}: expected true or false, got {_kind(value)}")
        return value
    if tp is int:
        if not isinstance(value, int) or isinstance(value, bool):
            raise SettingsError(f"{where}: expected an integer, got {_kind(value)}")
        return value
    if tp is float:
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise SettingsError(f"{where}: expected a number, got {_kind(value)}")
        return float(value)
    if tp is str or tp is Path:
        if not isinstance(value, str) or not value:
            raise SettingsError(f"{where}: expected a non-empty string, got {_kind(value)}")
        return Path(value) if tp is Path else value
    if origin is tuple:
        if not isinstance(value, list):
            raise SettingsError(f"{where}: expected a list, got {_kind(value)}")
        return tuple(_value(args[0], v, f"{where}[{i}]") for i, v in enumerate(value))
    if origin is Mapping:
        if not isinstance(value, dict):
            raise SettingsError(f"{where}: expected a mapping, got {_kind(value)}")
        return {
            _value(args[0], k, f"{where} key {k!r}"): _value(args[1], v, f"{where}.{k}")
            for k, v in value.items()
        }
    raise TypeError(f"no config conversion for {tp!r}")  # a settings field of a new type


def _kind(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    if isinstance(value, dict | list):
        return f"a {type(value).__name__}"
    return repr(value)


def is_text_config(text: str) -> bool:
    """TF Serving's text format starts with ``model_config_list`` (swapserve's YAML cannot)."""
    first = next(
        (ln.strip() for ln in text.splitlines() if ln.strip() and ln.strip()[0] != "#"), ""
    )
    return first.startswith("model_config_list")
