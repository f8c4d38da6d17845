"""The call gate: counting calls in and out, refusing new ones once closed, waking the waiter."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from swapserve.dataplane.gate import CallGate, gated
from swapserve.errors import Unavailable


def _until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 30
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.001)


def test_closed_gate_refuses_new_calls_and_lets_running_ones_finish() -> None:
    gate = CallGate()
    gate.enter()
    gate.close("shutting down")
    with pytest.raises(Unavailable, match="shutting down"), gate.call():
        pass
    assert gate.inflight == 1 and gate.closed
    assert not gate.wait_idle(0.01)  # the running call is still in
    gate.leave()
    assert gate.inflight == 0 and gate.wait_idle(0.0)


def test_waiter_wakes_when_the_last_call_leaves() -> None:
    gate = CallGate()
    gate.enter()
    gate.close("draining")
    woke: list[bool] = []
    waiter = threading.Thread(target=lambda: woke.append(gate.wait_idle(60)))
    waiter.start()
    _until(lambda: gate._waiters == 1, "the waiter to wait")
    gate.leave()  # notifies: a waiter is there
    waiter.join(30)
    assert woke == [True] and gate._waiters == 0


def test_gated_counts_the_call_out_when_it_raises() -> None:
    class Service:
        def __init__(self) -> None:
            self.gate = CallGate()

        @gated
        def fail(self) -> None:
            assert self.gate.inflight == 1
            raise ValueError("bad")

    service = Service()
    with pytest.raises(ValueError, match="bad"):
        service.fail()
    assert service.gate.inflight == 0
