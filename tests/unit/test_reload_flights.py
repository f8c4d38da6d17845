"""Concurrent Reloads of one model share rescans (group commit), and the data plane bounds admin
calls (issue 12, item 3). Fake loader, real threads, no TensorFlow."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from fakes import FakeLoader, FakeVersion, write_version

from swapserve.config.model_settings import ModelSettings, SessionSettings
from swapserve.dataplane.admin import Admin
from swapserve.dataplane.gate import CallGate
from swapserve.errors import FailedPrecondition, ResourceExhausted
from swapserve.model.manager import ModelManager
from swapserve.model.registry import ModelRegistry


class GatedLoader(FakeLoader):
    """Blocks loads of ``gated`` until ``gate`` opens, to hold the manager's load lock."""

    def __init__(self, gated: int) -> None:
        super().__init__()
        self.gated = gated
        self.gate = threading.Event()
        self.waiting = threading.Event()

    def __call__(self, version: int, path: Path, *args: Any) -> FakeVersion:
        if version == self.gated:
            self.waiting.set()
            assert self.gate.wait(30)
        return super().__call__(version, path, *args)


def _manager(root: Path, loader: FakeLoader) -> ModelManager:
    settings = ModelSettings(
        name="m", export_root=root, reload_settle_seconds=0.0, settle_seconds=0.0, warm_up=False
    )
    return ModelManager(settings, SessionSettings(), loader=loader)


def _count_scans(manager: ModelManager) -> list[int]:
    scans: list[int] = []
    source = manager._source
    original = source.scan_settled

    def counted(settle: float, *args: Any) -> Any:
        scans.append(1)
        return original(settle, *args)

    source.scan_settled = counted  # type: ignore[method-assign]
    return scans


def test_concurrent_reloads_share_one_rescan_that_started_after_them(tmp_path: Path) -> None:
    loader = GatedLoader(gated=2)
    write_version(tmp_path, 1)
    manager = _manager(tmp_path, loader)
    manager.poll(initial=True)
    scans = _count_scans(manager)
    write_version(tmp_path, 2)
    with ThreadPoolExecutor(40) as pool:
        first = pool.submit(manager.reload)  # holds the load lock while version 2 loads
        assert loader.waiting.wait(10)
        write_version(tmp_path, 3)  # exported after the first reload scanned, before the rest
        rest = [pool.submit(manager.reload) for _ in range(30)]
        while not manager._flights._pending or sum(1 for f in rest if f.running()) < 30:
            threading.Event().wait(0.01)
        loader.gate.set()
        assert first.result(10).version == 2
        outcomes = [f.result(10) for f in rest]
    assert {o.version for o in outcomes} == {3}  # every later caller sees the later export
    assert len(scans) == 2  # 31 reloads, two rescans
    assert loader.loads[3] == 1


def test_a_shared_failure_reaches_every_caller(tmp_path: Path) -> None:
    loader = GatedLoader(gated=2)
    write_version(tmp_path, 1)
    manager = _manager(tmp_path, loader)
    manager.poll(initial=True)
    write_version(tmp_path, 2)
    with ThreadPoolExecutor(10) as pool:
        first = pool.submit(manager.reload)
        assert loader.waiting.wait(10)
        write_version(tmp_path, 3, good=False)
        rest = [pool.submit(manager.reload, 3) for _ in range(8)]
        while sum(1 for f in rest if f.running()) < 8:
            threading.Event().wait(0.01)
        loader.gate.set()
        first.result(10)
        for future in rest:
            with pytest.raises(FailedPrecondition, match="version 3 is broken"):
                future.result(10)
    assert manager.serving_version == 2


def test_admin_calls_beyond_the_limit_are_refused_at_once(tmp_path: Path) -> None:
    loader = GatedLoader(gated=2)
    write_version(tmp_path, 1)
    manager = _manager(tmp_path, loader)
    manager.poll(initial=True)
    write_version(tmp_path, 2)
    dataplane = Admin(ModelRegistry([manager]), CallGate(), max_admin=2)
    with ThreadPoolExecutor(4) as pool:
        held = [pool.submit(dataplane.reload, "m") for _ in range(2)]
        assert loader.waiting.wait(10)
        while sum(1 for f in held if f.running()) < 2:
            threading.Event().wait(0.01)
        with pytest.raises(ResourceExhausted, match="2 admin calls are already in progress"):
            dataplane.reload("m")
        with pytest.raises(ResourceExhausted):
            dataplane.unload("m")
        loader.gate.set()
        assert [f.result(10).version for f in held] == [2, 2]
    assert dataplane.reload("m").version == 2  # the slots are free again
