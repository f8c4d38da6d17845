"""Parsing a JSON request body into Python values, with every failure a client's fault.

Python's ``json`` raises more than ``JSONDecodeError`` on hostile input: ``ValueError`` for an
integer longer than ``sys.get_int_max_str_digits()`` (4,300 digits), ``RecursionError`` for
deep nesting, ``UnicodeDecodeError`` for bytes that are not UTF-8. Each is the client's error
(400, INVALID_ARGUMENT), never the server's (500); every JSON body goes through ``parse``.
"""

from __future__ import annotations

import json
from typing import Any

from swapserve.errors import InvalidArgument


def parse(body: bytes, what: str) -> Any:
    """``body`` as JSON (``NaN``/``Infinity`` accepted, as TF Serving does).

    Args:
        body: the raw bytes.
        what: the body's name in messages ("the request body").

    Raises:
        InvalidArgument: not UTF-8, not JSON, a number Python refuses, or nested too deeply.
    """
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as err:
        raise InvalidArgument(f"{what} is not UTF-8: {err}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise InvalidArgument(f"{what} is not valid JSON: {err}") from None
    except RecursionError:
        raise InvalidArgument(f"{what} is nested too deeply") from None
    except ValueError as err:  # an integer beyond Python's digit limit
        raise InvalidArgument(f"{what} has a number that cannot be read: {err}") from None
