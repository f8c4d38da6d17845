"""Config polling (``--config-poll-seconds``; TF Serving's ``--model_config_file_poll_wait_seconds``):
a Kubernetes ConfigMap update -- a symlink swap, no signal -- adds, updates and removes models
while others answer under load; a broken edit changes nothing and is reported once."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pytest

from helpers import (
    HALF_PLUS_THREE,
    HALF_PLUS_TWO,
    CallLoad,
    copy_version,
    serving_settings,
    wait_for,
)
from swapserve.config.flags import build_parser
from swapserve.config.from_flags import settings_from_args
from swapserve.errors import NotFound
from swapserve_client import Client


def _entry(name: str, path: Path, extra: str = "") -> str:
    return (
        f"  config {{ name: '{name}' base_path: '{path}' model_platform: 'tensorflow' {extra}}}\n"
    )


class ConfigMap:
    """A directory laid out as the kubelet mounts a ConfigMap: ``models.config`` ->
    ``..data/models.config``, ``..data`` -> a timestamped directory swapped atomically."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.path = root / "models.config"
        self._n = 0

    def write(self, text: str) -> None:
        self._n += 1
        version = self.root / f"..2026_12_02_{self._n}"
        version.mkdir()
        (version / "models.config").write_text(text)
        tmp = self.root / "..data_tmp"
        tmp.symlink_to(version.name)
        os.replace(tmp, self.root / "..data")
        if not self.path.is_symlink():
            self.path.symlink_to("..data/models.config")


def test_configmap_updates_apply_while_other_models_serve(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    for name, src in (("a", HALF_PLUS_TWO), ("b", HALF_PLUS_THREE), ("c", HALF_PLUS_THREE)):
        copy_version(src, tmp_path / name, 123)
    configmap = ConfigMap(tmp_path / "cm")
    configmap.root.mkdir()
    head = "model_config_list {\n" + _entry("a", tmp_path / "a")
    configmap.write(head + _entry("b", tmp_path / "b") + "}\n")
    parser = build_parser()
    args = parser.parse_args(
        ["--config", str(configmap.path), "--config-poll-seconds", "0.2", "--host", "127.0.0.1",
         "--port", "0", "--poll-seconds", "0.1"]
    )  # fmt: skip
    settings = settings_from_args(args, parser)
    x = {"x": np.float32([[2.0]])}
    with serving_settings(settings) as app, Client(f"127.0.0.1:{app.port}", timeout=30) as client:
        ok = app.metrics.registry.get_sample_value

        def check_a() -> None:
            assert float(client.predict("a", x)["y"][0, 0]) == 3.0

        with CallLoad([check_a], threads=4) as load:
            load.wait_for_answers(20)
            # Add c, label b's version: applied within a poll or two, a untouched.
            labelled = _entry("b", tmp_path / "b", "version_labels { key: 'stable' value: 123 } ")
            configmap.write(head + labelled + _entry("c", tmp_path / "c") + "}\n")
            wait_for(lambda: _answer(client, "c", x) == 4.0, what="model c to serve")
            wait_for(lambda: app.registry.get("b").settings.labels == {"stable": 123}, what="b")
            assert float(client.predict("b", x, label="stable")["y"][0, 0]) == 4.0
            # Remove b.
            configmap.write(head + _entry("c", tmp_path / "c") + "}\n")
            wait_for(lambda: app.registry.find("b") is None, what="b to be removed")
            with pytest.raises(NotFound):
                app.registry.get("b")
            # A broken edit: nothing changes, one error line, the gauge says so.
            configmap.write(head + "  config { name: 'd' base_pth: '/x' }\n}\n")
            wait_for(lambda: ok("swapserve_config_ok") == 0, what="the refusal")
            load.wait_for_answers(20)  # several polls go by
            assert sorted(m.name for m in app.registry) == ["a", "c"]
            assert _answer(client, "c", x) == 4.0
            # Fixed: applied again.
            configmap.write(head + "}\n")
            wait_for(lambda: app.registry.find("c") is None, what="c to be removed")
            wait_for(lambda: ok("swapserve_config_ok") == 1, what="the config to be ok again")
            load.wait_for_answers(20)
        assert load.errors == [] and load.ok > 80
    refusals = [
        r for r in caplog.records
        if r.levelno == logging.ERROR and "base_pth" in r.getMessage()
    ]  # fmt: skip
    assert len(refusals) == 1, [r.getMessage() for r in refusals]
    assert "models.config:3:22" in refusals[0].getMessage()


def _answer(client: Client, model: str, x: dict[str, np.ndarray]) -> float | None:
    try:
        return float(client.predict(model, x)["y"][0, 0])
    except Exception:
        return None
