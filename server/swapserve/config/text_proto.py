"""Parsing protobuf text format (TF Serving's and Triton's config files) so that every fault is
a ``SettingsError`` naming the file: a syntax error, an unknown field, nesting deep enough to
exhaust Python's recursion (20,000 levels escaped as a traceback before)."""

from __future__ import annotations

from typing import Any

from google.protobuf import text_format

from swapserve.config.model_settings import SettingsError

_LONGEST = 300
"""Characters of a parser message kept (it may quote the whole offending line)."""


def parse(text: str, message: Any, where: str, **options: Any) -> None:
    """Parses protobuf text format into ``message``.

    Raises:
        SettingsError: a syntax error or unknown field (line and column), or nesting too deep.
    """
    try:
        text_format.Parse(text, message, **options)
    except text_format.ParseError as err:
        raise SettingsError(f"{where}:{str(err)[:_LONGEST]}") from None
    except RecursionError:
        raise SettingsError(f"{where}: nested too deeply") from None
