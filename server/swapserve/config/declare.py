"""Declaring a setting once: a dataclass field carries its help text, its flag and whether the
config file's ``server`` section may set it, so the flag parser (``swapserve.config.flags``),
the flags -> settings mapping (``swapserve.config.from_flags``), the config file's keys
(``swapserve.config.yaml_file``) and the flag table of docs/configuration.md all derive from the
field (a test checks the table against it).
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass
from typing import Any

_UNSET: Any = dataclasses.MISSING


@dataclass(frozen=True)
class Flag:
    """How a setting appears on the command line and in the docs."""

    help: str
    """One text for ``--help`` and the docs' table."""
    name: str = ""
    """The flag ("" : ``--`` and the field's name with hyphens)."""
    server_key: bool = False
    """The config file's ``server`` section may set it (listeners and limits; never secrets)."""
    choices: tuple[str, ...] = ()
    metavar: str | None = None
    shown_default: str = ""
    """The default as the docs' table shows it ("": the value, or "off" for None/False)."""
    doc: str = ""
    """More for the docs' table only (links, details too long for ``--help``)."""
    from_env: str = ""
    """The flag names a file holding a secret; this environment variable is the fallback."""
    text: bool = False
    """Parsed as text, not as the field's type (an export root may be a URL, which ``Path``
    would mangle)."""
    negate: bool = False
    """A boolean that defaults to True: the flag (``--no-...``) turns it off."""


def flag(**declaration: Any) -> dict[str, Flag]:
    """Field metadata declaring a ``Flag`` (for a required field:
    ``name: str = field(metadata=flag(help=...))``)."""
    return {"flag": Flag(**declaration)}


def setting(default: Any = _UNSET, *, factory: Any = _UNSET, **declaration: Any) -> Any:
    """A dataclass field with a default, declared with its ``Flag`` (``help`` and the rest as
    keywords)."""
    if factory is not _UNSET:
        return dataclasses.field(default_factory=factory, metadata=flag(**declaration))
    return dataclasses.field(default=default, metadata=flag(**declaration))


@dataclass(frozen=True)
class Declared:
    """One declared setting: the class and field it belongs to, its type and its flag."""

    owner: type
    field: dataclasses.Field[Any]
    type: Any
    flag: Flag

    @property
    def option(self) -> str:
        """The command-line flag."""
        return self.flag.name or "--" + self.field.name.replace("_", "-")

    @property
    def dest(self) -> str:
        """The parsed namespace's attribute: the flag's name (the field's, for ``--no-...``)."""
        if self.flag.negate:
            return self.field.name
        return self.option.lstrip("-").replace("-", "_")

    @property
    def default(self) -> Any:
        """The field's default (None for a required field)."""
        if self.field.default is not dataclasses.MISSING:
            return self.field.default
        if self.field.default_factory is not dataclasses.MISSING:
            return self.field.default_factory()
        return None

    @property
    def scalar(self) -> Any:
        """The type without ``| None``."""
        args = [a for a in typing.get_args(self.type) if a is not type(None)]
        if typing.get_origin(self.type) in (typing.Union, _UnionType) and len(args) == 1:
            return args[0]
        return self.type


_UnionType = type(int | None)


def declared(owner: type) -> list[Declared]:
    """The fields of dataclass ``owner`` that are declared with a ``Flag``, in order."""
    hints = typing.get_type_hints(owner)
    return [
        Declared(owner, f, hints[f.name], f.metadata["flag"])
        for f in dataclasses.fields(owner)
        if "flag" in f.metadata
    ]
