"""TF Serving's ModelServerConfig as swapserve settings (HandleReloadConfigRequest)."""

from __future__ import annotations

from pathlib import Path

import pytest
from tensorflow_serving.config import model_server_config_pb2

from swapserve.config.model_settings import ModelSettings, VersionPolicy
from swapserve.config.tfserving import model_settings
from swapserve.errors import InvalidArgument


def test_model_config_list_with_an_object_store_base_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SWAPSERVE_CACHE_DIR", str(tmp_path))
    config = model_server_config_pb2.ModelServerConfig()
    entry = config.model_config_list.config.add(name="m", base_path="s3://bucket/exports/m")
    entry.model_version_policy.latest.num_versions = 2
    entry.version_labels["stable"] = 7
    (settings,) = model_settings(config, lambda name: None)
    assert settings.remote == "s3://bucket/exports/m"
    assert settings.export_root == tmp_path / "m"
    assert settings.versions.latest == 2 and settings.labels == {"stable": 7}


def test_policies_and_kept_options() -> None:
    config = model_server_config_pb2.ModelServerConfig()
    config.model_config_list.config.add(name="a", base_path="/srv/a")
    b = config.model_config_list.config.add(name="b", base_path="/srv/b")
    b.model_version_policy.specific.versions.extend([3, 5])
    c = config.model_config_list.config.add(name="c", base_path="/srv/c")
    c.model_version_policy.all.SetInParent()
    current = ModelSettings("a", Path("/old"), poll_seconds=7.0, warm_up=False)
    a_, b_, c_ = model_settings(config, lambda name: current if name == "a" else None)
    assert (a_.export_root, a_.poll_seconds, a_.warm_up) == (Path("/srv/a"), 7.0, False)
    assert a_.versions == VersionPolicy(latest=1)
    assert b_.versions == VersionPolicy(specific=(3, 5))
    assert c_.versions.latest >= 2**31


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda e: setattr(e, "base_path", ""), "config[0]: name and base_path are required"),
        (lambda e: setattr(e, "model_platform", "onnx"), "model_platform 'onnx' is not served"),
        (lambda e: setattr(e, "name", "a b"), "config[0]: model name 'a b'"),
    ],
)
def test_invalid_entries_are_named(edit: object, message: str) -> None:
    config = model_server_config_pb2.ModelServerConfig()
    entry = config.model_config_list.config.add(name="a", base_path="/srv/a")
    edit(entry)  # type: ignore[operator]
    with pytest.raises(InvalidArgument) as exc:
        model_settings(config, lambda name: None)
    assert message in exc.value.message
