"""Model sources and config polling (swapserve/sources.py, model/config_poll.py): a Triton
repository read per model, a config file with the flags' batching, and the poller that applies
changes and reports a refused edit once. Fake loader, real files, no TensorFlow."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from fakes import FakeLoader, write_version

from swapserve.config.model_lists import ConfigFileSource, RepositorySource, with_batching
from swapserve.config.model_settings import BatchingSettings, ModelSettings, SessionSettings
from swapserve.config.reload import ConfigPoller, ConfigReloader
from swapserve.errors import NotFound
from swapserve.model.discovery import scan
from swapserve.model.manager import ModelManager
from swapserve.model.registry import ModelRegistry
from swapserve.observability.metrics import Metrics

BASE = ModelSettings("base", Path(), settle_seconds=0.0, warm_up=False)
BATCHING = BatchingSettings(enabled=True, max_batch_size=4)


def _errors(caplog: pytest.LogCaptureFixture, words: str) -> int:
    return sum(words in r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR)


def test_a_version_in_model_savedmodel_is_complete(tmp_path: Path) -> None:
    inner = tmp_path / "1" / "model.savedmodel"
    inner.mkdir(parents=True)
    (inner / "saved_model.pb").write_bytes(b"good")
    (tmp_path / "2").mkdir()  # empty: not complete
    found = scan(tmp_path)
    assert found[1].complete and found[1].path == inner
    assert not found[2].complete


def test_repository_models_are_its_directories(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / ".hidden").mkdir()
    (tmp_path / "README").write_text("not a model")
    (tmp_path / "b" / "config.pbtxt").write_text(
        "max_batch_size: 8\ndynamic_batching { max_queue_delay_microseconds: 50 }\n"
    )
    a, b = RepositorySource(tmp_path, BASE)()
    assert (a.name, a.export_root, a.batching.enabled) == ("a", tmp_path / "a", False)
    assert (b.name, b.batching.max_batch_size, b.batching.batch_timeout_micros) == ("b", 8, 50)


def test_the_flags_batching_applies_to_models_that_set_none(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "config.pbtxt").write_text("max_batch_size: 2 dynamic_batching {}")
    base = ModelSettings("base", Path(), batching=BATCHING)
    a, b = RepositorySource(tmp_path, base)()
    assert a.batching == BATCHING and b.batching.max_batch_size == 2
    m = ModelSettings("m", Path())
    assert with_batching((m,), None) == (m,)
    assert with_batching((m,), BatchingSettings()) == (m,)


def test_a_broken_config_is_reported_once_and_keeps_what_served(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "a").mkdir()
    config = tmp_path / "a" / "config.pbtxt"
    config.write_text("version_policy { latest { num_versions: 2 } }")
    source = RepositorySource(tmp_path, BASE)
    (before,) = source()
    config.write_text("version_policy { latest { num_versions: two } }")
    for _ in range(3):
        assert source() == (before,)
    assert _errors(caplog, "a/config.pbtxt:1:") == 1
    assert (
        source.problems == {"a": source.problems["a"]} and "a/config.pbtxt" in source.problems["a"]
    )
    config.write_text("version_policy { all {} }")
    (after,) = source()
    assert after.versions.latest == 2**31 and source.problems == {}


def test_a_new_model_with_a_broken_config_is_not_served(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "good").mkdir()
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "config.pbtxt").write_text('platform: "pytorch_libtorch"')
    source = RepositorySource(tmp_path, BASE)
    assert [m.name for m in source()] == ["good"]
    assert [m.name for m in source()] == ["good"]
    assert _errors(caplog, "platform 'pytorch_libtorch' is not served here") == 1


def test_a_source_built_after_a_first_read_does_not_report_again(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "config.pbtxt").write_text("max_batch_size: x")
    (tmp_path / "good").mkdir()
    served = RepositorySource(tmp_path, BASE)()
    again = RepositorySource(tmp_path, BASE, served=served)
    assert again() == served
    assert _errors(caplog, "bad/config.pbtxt") == 1


def test_ignored_keys_are_named_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "config.pbtxt").write_text('parameters [ { key: "x" value: {} } ]')
    source = RepositorySource(tmp_path, BASE)
    source()
    source()
    lines = [r for r in caplog.records if "not applied by swapserve: parameters" in r.getMessage()]
    assert len(lines) == 1


def test_a_config_file_source_batches_every_model_without_batching(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        "models:\n"
        "  - {name: a, export_root: a}\n"
        "  - {name: b, export_root: b, batching: {enabled: true, max_batch_size: 2}}\n"
    )
    a, b = ConfigFileSource(path, ModelSettings("defaults", Path(), batching=BATCHING))()
    assert a.batching == BATCHING and b.batching.max_batch_size == 2


def _registry(
    tmp_path: Path, text: str, unloaded: tuple[str, ...] = ()
) -> tuple[ConfigReloader, ModelRegistry, Path, Metrics]:
    config = tmp_path / "c.yaml"
    config.write_text(text)
    metrics = Metrics()
    source = ConfigFileSource(config)
    loader = FakeLoader()

    def manager(settings: ModelSettings) -> ModelManager:
        return ModelManager(settings, SessionSettings(), events=metrics, loader=loader)

    registry = ModelRegistry(
        [manager(m) for m in source()], metrics, factory=manager, unloaded=unloaded,
        explicit=bool(unloaded),
    )  # fmt: skip
    return ConfigReloader(registry, source, metrics), registry, config, metrics


def test_explicit_mode_a_load_reads_that_models_part_only(tmp_path: Path) -> None:
    for name in ("a", "b", "c", "d"):
        write_version(tmp_path / name, 1)
    two = _TWO + "  - {name: b, export_root: b, warm_up: false}\n"
    reloader, registry, config, _ = _registry(tmp_path, two, unloaded=("b",))
    a, b = registry
    for m in registry:
        m.poll(initial=True)
    assert (a.serving_version, b.serving_version, b.unloaded) == (1, 0, True)
    assert registry.all_serving()  # an unloaded model does not make the server unready
    # a's edit waits for a's own load; b's new root applies to b, which stays unloaded.
    config.write_text(
        "models:\n  - {name: a, export_root: d, warm_up: false}\n"
        "  - {name: b, export_root: c, warm_up: false}\n"
        "  - {name: c, export_root: c, warm_up: false}\n"
    )
    change = reloader.reload_model("b")
    assert change.replaced == ("b",) and change.added == ()
    assert registry.get("a").settings.export_root == tmp_path / "a"
    assert registry.get("b").unloaded and registry.get("b").settings.export_root == tmp_path / "c"
    assert reloader.reload_model("c").added == ("c",)  # a model new to the source: unloaded
    assert registry.get("c").unloaded and registry.get("c").serving_version == 0
    registry.get("c").reload()
    assert registry.get("c").serving_version == 1 and not registry.get("c").unloaded
    with pytest.raises(NotFound, match="model 'zzz' is not in the model repository"):
        reloader.reload_model("zzz")
    registry.close()


_TWO = "models:\n  - {name: a, export_root: a, warm_up: false}\n"


def test_the_poller_applies_changes_and_reports_a_bad_edit_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    write_version(tmp_path / "a", 1)
    write_version(tmp_path / "b", 1)
    reloader, registry, config, metrics = _registry(tmp_path, _TWO)
    poller = ConfigPoller(reloader, 60)
    reloads = metrics.config_reloads

    def ok() -> float | None:
        return metrics.registry.get_sample_value("swapserve_config_ok")

    poller.poll_once()  # unchanged: nothing applied
    assert reloads.labels("applied")._value.get() == 0 and ok() == 1
    config.write_text(_TWO + "  - {name: b, export_root: b, warm_up: false}\n")
    poller.poll_once()
    assert sorted(m.name for m in registry) == ["a", "b"]
    config.write_text(_TWO + "  - {name: b, export_root: b, warm_up: nope}\n")
    for _ in range(3):
        poller.poll_once()
    assert _errors(caplog, "models[1].warm_up: expected true or false") == 1
    assert sorted(m.name for m in registry) == ["a", "b"] and ok() == 0
    assert reloads.labels("failed")._value.get() == 1  # one refused edit, however often read
    config.write_text(_TWO)
    poller.poll_once()
    assert [m.name for m in registry] == ["a"] and ok() == 1
    registry.close()


def test_a_replacement_that_cannot_load_keeps_the_old_settings_and_is_not_retried(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    write_version(tmp_path / "a", 1)
    write_version(tmp_path / "broken", 1, good=False)
    reloader, registry, config, metrics = _registry(tmp_path, _TWO)
    for m in registry:
        m.poll(initial=True)
    config.write_text("models:\n  - {name: a, export_root: broken, warm_up: false}\n")
    poller = ConfigPoller(reloader, 60)
    poller.poll_once()
    poller.poll_once()
    (a,) = registry
    assert a.settings.export_root == tmp_path / "a" and a.serving_version == 1
    assert _errors(caplog, "keeps its previous settings") == 1
    assert metrics.registry.get_sample_value("swapserve_config_ok") == 0
    assert (
        metrics.registry.get_sample_value("swapserve_config_reloads_total", {"result": "failed"})
        == 1
    )
    registry.close()


@pytest.mark.parametrize(
    "content",
    [b"# caf\xe9\nmax_batch_size: 4\n", b"version_policy { " + b"a { " * 20_000 + b"}" * 20_001],
    ids=["non-utf8-byte", "nested-20000-deep"],
)
def test_a_hostile_config_pbtxt_fails_only_its_model(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, content: bytes
) -> None:
    """Before: a traceback (exit 1 at start, one per poll after) and no model served."""
    for name in ("good", "bad"):
        (tmp_path / name).mkdir()
    (tmp_path / "bad" / "config.pbtxt").write_bytes(content)
    source = RepositorySource(tmp_path, BASE)
    for _ in range(3):
        assert [m.name for m in source()] == ["good"]
    assert list(source.problems) == ["bad"]
    assert _errors(caplog, "bad/config.pbtxt") == 1
    assert len(source.problems["bad"]) < 600


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _settling(tmp_path: Path, settle: float) -> tuple[ConfigPoller, ModelRegistry, Path, Clock]:
    reloader, registry, config, metrics = _registry(tmp_path, _TWO + _B)
    clock = Clock()
    reloader = ConfigReloader(registry, ConfigFileSource(config), metrics, settle, clock)
    return ConfigPoller(reloader, 1), registry, config, clock


_B = "  - {name: b, export_root: b, warm_up: false}\n"


def test_a_file_caught_half_written_is_not_applied(tmp_path: Path) -> None:
    """Before: a config rewritten in two writes 3 s apart (the first half valid YAML) removed a
    model and re-added it: 16 of 83 requests got 404/503. Now a change applies only once the
    file has read the same for the settle period."""
    write_version(tmp_path / "a", 1)
    write_version(tmp_path / "b", 1)
    poller, registry, config, clock = _settling(tmp_path, settle=5.0)
    with config.open("r+") as f:  # the same file, rewritten in two steps
        f.truncate(0)
        f.write(_TWO)  # half: valid YAML without model b
        f.flush()
        for second in range(4):  # the writer pauses 3 s; polls go on
            clock.now = second
            poller.poll_once()
            assert sorted(m.name for m in registry) == ["a", "b"]
        f.write(_B + "  - {name: c, export_root: a, warm_up: false}\n")
    for second in range(4, 9):
        clock.now = second
        poller.poll_once()
        assert sorted(m.name for m in registry) == ["a", "b"], second  # settling
    clock.now = 9.5
    poller.poll_once()
    assert sorted(m.name for m in registry) == ["a", "b", "c"]


def test_a_file_replaced_whole_applies_at_once(tmp_path: Path) -> None:
    """A rename (an editor's save, rsync, a ConfigMap's symlink swap) cannot be half-written."""
    write_version(tmp_path / "a", 1)
    write_version(tmp_path / "b", 1)
    poller, registry, config, _ = _settling(tmp_path, settle=60.0)
    staged = tmp_path / "c.yaml.tmp"
    staged.write_text(_TWO)
    staged.replace(config)
    poller.poll_once()
    assert [m.name for m in registry] == ["a"]
