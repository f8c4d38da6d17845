"""TF Serving's ``--grpc_channel_arguments`` text: ``key=value`` pairs, comma separated."""

from __future__ import annotations

from swapserve.config.model_settings import SettingsError


def parse_channel_arguments(text: str) -> tuple[tuple[str, int | str], ...]:
    """The (key, value) channel args of ``text``; a value that is an integer is passed as one
    (as TF Serving does), any other as a string.

    Raises:
        SettingsError: a pair without ``=`` or without a key.
    """
    out: list[tuple[str, int | str]] = []
    for pair in text.split(","):
        if not pair.strip():
            continue
        key, sep, value = pair.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key:
            raise SettingsError(
                f"--grpc-channel-arguments {pair.strip()!r}: expected KEY=VALUE pairs, "
                "e.g. grpc.max_connection_age_ms=60000"
            )
        try:
            out.append((key, int(value)))
        except ValueError:
            out.append((key, value))
    return tuple(out)
