"""Version directory discovery and settling (pure, no TensorFlow)."""

from __future__ import annotations

from pathlib import Path

from swapserve.model import discovery


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _version(root: Path, name: str, *, graph: bool = True, variables: bytes = b"v") -> Path:
    path = root / name
    (path / "variables").mkdir(parents=True)
    if graph:
        (path / "saved_model.pb").write_bytes(b"graph")
    (path / "variables" / "variables.data-00000-of-00001").write_bytes(variables)
    return path


def test_scan_keeps_numeric_dirs_only(tmp_path: Path) -> None:
    _version(tmp_path, "1795300968")
    _version(tmp_path, "00000123")
    _version(tmp_path, "temp-1795300999")
    _version(tmp_path, "v2")
    _version(tmp_path, "0")
    (tmp_path / "42").write_text("a file, not a directory")
    found = discovery.scan(tmp_path)
    assert sorted(found) == [123, 1795300968]
    assert found[123].path == tmp_path / "00000123"
    assert discovery.scan(tmp_path / "missing") == {}


def test_complete_needs_a_graph_file(tmp_path: Path) -> None:
    _version(tmp_path, "1", graph=False)
    _version(tmp_path, "2")
    (tmp_path / "3").mkdir()
    (tmp_path / "3" / "saved_model.pbtxt").write_text("x")
    found = discovery.scan(tmp_path)
    assert [found[v].complete for v in (1, 2, 3)] == [False, True, True]


def test_symlinks_leading_outside_the_root_are_ignored(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    outside = _version(tmp_path, "elsewhere")
    inside = _version(root, "1")
    (root / "2").symlink_to(outside, target_is_directory=True)
    (root / "3").symlink_to(inside, target_is_directory=True)  # inside the root: allowed
    (root / "4").symlink_to(root / ".." / "elsewhere", target_is_directory=True)
    assert sorted(discovery.scan(root)) == [1, 3]
