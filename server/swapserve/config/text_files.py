"""Reading config files so that every fault in one is a ``SettingsError`` naming the file: a
non-UTF-8 byte (even in a comment), nesting deep enough to exhaust Python's recursion, an
unreadable file. Anything else escaped as a traceback at start (exit 1 instead of 2) and at
every poll (issue 30)."""

from __future__ import annotations

from pathlib import Path

from swapserve.config.model_settings import SettingsError


def read(path: Path, what: str = "") -> str:
    """The file's text (UTF-8).

    Raises:
        SettingsError: unreadable, or not UTF-8 (with the byte offset).
    """
    name = f"{what} {path}" if what else str(path)
    try:
        return path.read_text(encoding="utf-8")
    except OSError as err:
        raise SettingsError(f"cannot read {name}: {err.strerror}") from None
    except UnicodeDecodeError as err:
        raise SettingsError(
            f"{name} is not UTF-8: byte 0x{err.object[err.start]:02x} at offset {err.start}"
        ) from None
