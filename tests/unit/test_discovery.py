"""Version directory discovery and settling (pure, no TensorFlow)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

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


def test_versions_go_up_to_int64_max_and_larger_names_are_skipped_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    top = 2**63 - 1
    _version(tmp_path, str(top))
    _version(tmp_path, str(top + 1))
    _version(tmp_path, "99999999999999999999")
    _version(tmp_path, "0" + str(top))  # same number as the first: the first in order wins
    _version(tmp_path, "1²")  # str.isdigit() is true for it; int() refuses it
    skipped: set[str] = set()
    with caplog.at_level(logging.WARNING):
        for _ in range(3):
            assert sorted(discovery.scan(tmp_path, skipped)) == [top]
    warnings = [r.getMessage() for r in caplog.records if "version numbers go up to" in r.message]
    assert len(warnings) == 2, warnings  # once per name, not once per scan
    assert skipped == {str(top + 1), "99999999999999999999"}


@given(st.text(alphabet=st.characters(codec="utf-8"), min_size=1, max_size=25))
def test_version_of_any_name_is_a_version_every_api_can_carry_or_none(name: str) -> None:
    version = discovery.version_of(name)
    if version is None:
        assert not (name.isascii() and name.isdigit() and 0 < int(name) < 2**63)
    else:
        assert 1 <= version <= 2**63 - 1 and version == int(name)


def test_a_symlink_cycle_in_a_version_is_that_versions_problem(tmp_path: Path) -> None:
    _version(tmp_path, "1")
    bad = _version(tmp_path, "2")
    (bad / "a").symlink_to(bad / "b")
    (bad / "b").symlink_to(bad / "a")
    _version(tmp_path, "3")
    found = discovery.scan(tmp_path)  # before: OSError ELOOP for the whole root
    assert sorted(found) == [1, 2, 3]
    assert found[1].problems == found[3].problems == ()
    assert [p.split(":")[0] for p in found[2].problems] == ["a", "b"]
    assert "does not resolve" in found[2].problems[0]
    # Repairing the link changes the fingerprint (so a failed version is retried).
    (bad / "a").unlink()
    (bad / "a").write_text("now a file")
    again = discovery.scan(tmp_path)[2]
    assert again.fingerprint != found[2].fingerprint
    assert [p.split(":")[0] for p in again.problems] == []


def test_links_are_not_followed_out_of_the_version(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "big").write_bytes(b"x" * 100)
    (outside / "sub").mkdir()
    (outside / "sub" / "deep").write_bytes(b"y")
    root = tmp_path / "root"
    version = _version(root, "1")
    (version / "file_link").symlink_to(outside / "big")
    (version / "dir_link").symlink_to(outside / "sub", target_is_directory=True)
    (version / "variables" / "up").symlink_to(version, target_is_directory=True)  # a loop
    (version / "inner").symlink_to(version / "saved_model.pb")
    cand = discovery.scan(root)[1]
    names = [rel for rel, _, _ in cand.fingerprint]
    assert cand.problems == ()
    assert not any("deep" in n for n in names)  # the linked directory is not walked
    assert f"file_link -> {outside / 'big'}" in names
    assert "file_link" not in names  # the target outside the version is not stat'ed
    assert ("inner", 5, (version / "saved_model.pb").stat().st_mtime_ns) in cand.fingerprint
    # The loop is two entries (the link, and its target inside the version), not walked round.
    assert [n for n in names if n.startswith("variables/up")] == [
        "variables/up",
        f"variables/up -> {version}",
    ]


def test_a_version_directory_that_is_a_symlink_loop_is_skipped(tmp_path: Path) -> None:
    _version(tmp_path, "1")
    (tmp_path / "2").symlink_to(tmp_path / "3")
    (tmp_path / "3").symlink_to(tmp_path / "2")
    assert sorted(discovery.scan(tmp_path)) == [1]


def test_an_unlistable_root_raises_for_the_caller_to_report(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a directory")
    with pytest.raises(OSError):
        discovery.scan(tmp_path / "file")
