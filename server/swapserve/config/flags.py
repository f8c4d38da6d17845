"""``swapserve``'s command line, built from the settings' declarations: every flag, its type,
default, choices and help come from one ``setting(...)`` field (``swapserve.config.declare``).

    python -m swapserve.config.flags --markdown   # the flag table of docs/configuration.md
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from swapserve import __version__
from swapserve.config.declare import Declared, declared, setting
from swapserve.config.model_settings import (
    BatchingSettings,
    ModelSettings,
    SessionSettings,
    VersionPolicy,
)
from swapserve.config.rollout_settings import RolloutSettings
from swapserve.config.settings import Settings

LOG_FORMATS = ("text", "json")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


@dataclass(frozen=True)
class ProcessSettings:
    """How the process runs: not server settings (a worker gets them from its supervisor)."""

    workers: int = setting(
        1, help="server processes sharing the port (SO_REUSEPORT), each with its own model copy",
        doc="see [Worker processes](configuration.md#worker-processes)",
    )  # fmt: skip
    log_format: str = setting(
        "text", choices=LOG_FORMATS,
        help="text lines, or one JSON object per line (model events carry model, version, "
        "event)",
    )  # fmt: skip
    log_level: str = setting(
        "INFO", choices=LOG_LEVELS,
        help="logging level; below DEBUG, start-up prints only swapserve's own lines "
        "(TensorFlow's C++ preamble and probe lines are held back)",
    )  # fmt: skip


_SOURCES = (
    "config_path",
    "model_repository",
    "startup_models",
    "config_poll_seconds",
    "config_settle_seconds",
)


def all_declared() -> list[Declared]:
    """Every declared setting in the order ``--help`` and the docs list them: where the models
    come from, the one-model flags, the server, batching, TensorFlow sessions, the process."""
    server = declared(Settings)
    return [
        *(d for d in server if d.field.name in _SOURCES),
        *declared(ModelSettings),
        *declared(VersionPolicy),
        *(d for d in server if d.field.name not in _SOURCES),
        *declared(BatchingSettings),
        *declared(RolloutSettings),
        *declared(SessionSettings),
        *declared(ProcessSettings),
    ]


def kind(d: Declared) -> str:
    """How a setting is written on the command line: ``flag`` (a switch), ``sizes`` (comma
    separated numbers), ``labels`` (repeated NAME=VERSION), ``secret`` (a file), ``value``."""
    if d.flag.from_env:
        return "secret"
    if d.scalar is bool:
        return "flag"
    if d.scalar == tuple[int, ...]:
        return "sizes"
    if d.scalar == Mapping[str, int]:
        return "labels"
    return "value"


def _add(parser: argparse.ArgumentParser, d: Declared) -> None:
    how = kind(d)
    default = d.default
    help_text = d.flag.help
    if how == "flag":
        action = "store_false" if d.flag.negate else "store_true"
        parser.add_argument(d.option, dest=d.dest, action=action, help=help_text)
        return
    if how == "labels":
        parser.add_argument(
            d.option, dest=d.dest, action="append", default=[], metavar=d.flag.metavar,
            help=help_text,
        )  # fmt: skip
        return
    if how == "sizes":
        default = ",".join(str(x) for x in default)
    if default not in (None, ""):
        help_text += " (default: %(default)s)"
    convert = Path if how == "secret" else d.scalar if how == "value" and not d.flag.text else str
    parser.add_argument(
        d.option,
        dest=d.dest,
        type=convert,
        default=None if how == "secret" else default,
        choices=d.flag.choices or None,
        metavar=d.flag.metavar,
        help=help_text,
    )


def build_parser() -> argparse.ArgumentParser:
    """The server's flags, from the declarations."""
    parser = argparse.ArgumentParser(
        prog="swapserve",
        description="Serve a TensorFlow SavedModel export root over gRPC, hot-swapping new "
        "versions as they are exported.",
    )
    parser.add_argument("--version", action="version", version=f"swapserve {__version__}")
    for d in all_declared():
        _add(parser, d)
    return parser


def _shown_default(d: Declared) -> str:
    if d.flag.shown_default:
        return d.flag.shown_default
    default = d.default
    if d.flag.negate:
        return "on"
    if default in (None, False):
        return "off"
    return f"`{default}`"


def markdown_table() -> str:
    """The flag table of docs/configuration.md (a test keeps the page equal to it)."""
    rows = ["| flag | default | meaning |", "|---|---|---|"]
    for d in all_declared():
        meaning = d.flag.help + (f"; {d.flag.doc}" if d.flag.doc else "")
        rows.append(f"| `{d.option}` | {_shown_default(d)} | {meaning} |")
    return "\n".join(rows) + "\n"


def main(argv: list[str] | None = None) -> None:
    """Prints the docs' flag table (``--markdown``)."""
    parser = argparse.ArgumentParser(description="swapserve's flags, from their declarations")
    parser.add_argument("--markdown", action="store_true", required=True, help="the docs' table")
    parser.parse_args(argv)
    sys.stdout.write(markdown_table())


if __name__ == "__main__":
    main()
