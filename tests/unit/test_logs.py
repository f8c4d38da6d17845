"""gRPC's traceback per undecodable request becomes one rate-limited line."""

from __future__ import annotations

import logging
import sys

from swapserve.observability.logs import UndecodableRequests


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _record(msg: str) -> logging.LogRecord:
    try:
        raise ValueError("Error parsing message with type 'swapserve.v1.PredictRequest'")
    except ValueError:
        exc_info = sys.exc_info()
    return logging.LogRecord("grpc._common", logging.ERROR, __file__, 1, msg, None, exc_info)


def test_one_line_per_period_with_a_count_of_the_rest() -> None:
    clock = Clock()
    gate = UndecodableRequests(every=10.0, clock=clock)
    first = _record("Exception deserializing message!")
    assert gate.filter(first)
    assert first.exc_info is None and first.levelname == "WARNING"
    assert first.getMessage().startswith("could not deserialize a request (ValueError: Error pars")
    assert not any(gate.filter(_record("Exception deserializing message!")) for _ in range(500))
    clock.now = 10.0
    later = _record("Exception deserializing message!")
    assert gate.filter(later)
    assert later.getMessage().endswith("; 500 more since the last report")


def test_other_grpc_records_pass_untouched() -> None:
    gate = UndecodableRequests(clock=Clock())
    record = _record("Exception calling application: boom")
    assert gate.filter(record)
    assert record.exc_info is not None and record.levelname == "ERROR"
