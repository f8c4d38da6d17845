"""The atomic export helper and the demo training script."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from helpers import REPO
from swapserve.config.model_settings import SessionSettings
from swapserve.export import export_model, next_version
from swapserve.model.loaded_version import LoadedVersion


class Doubler(tf.Module):
    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="v")])
    def serve(self, v: tf.Tensor) -> dict[str, tf.Tensor]:
        return {"out": v * 2}


def test_export_is_atomic_and_versions_increase(tmp_path: Path) -> None:
    module = Doubler()
    first = export_model(module, tmp_path / "root", signatures={"serving_default": module.serve})
    second = export_model(module, tmp_path / "root", signatures={"serving_default": module.serve})
    assert int(second.name) > int(first.name) > 1_700_000_000
    assert (first / "saved_model.pb").exists()
    assert sorted(p.name for p in (tmp_path / "root").iterdir()) == [first.name, second.name]
    assert next_version(tmp_path / "root") == max(int(second.name) + 1, next_version(tmp_path))
    with pytest.raises(FileExistsError):
        export_model(module, tmp_path / "root", version=int(first.name))


def test_failed_export_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(Exception):  # whatever TensorFlow raises
        export_model(object(), tmp_path, version=5)
    assert list(tmp_path.iterdir()) == []


def test_demo_training_exports_the_seed_model(tmp_path: Path) -> None:
    for slope in (2, 3):
        subprocess.run(
            [
                sys.executable,
                str(REPO / "examples" / "seed" / "train.py"),
                "--export-root",
                str(tmp_path),
                "--slope",
                str(slope),
                "--steps",
                "300",
            ],
            check=True,
            capture_output=True,
            timeout=300,
        )
    versions = sorted(tmp_path.iterdir(), key=lambda p: int(p.name))
    assert len(versions) == 2
    for path, slope in zip(versions, (2, 3), strict=True):
        loaded = LoadedVersion.load(int(path.name), path, SessionSettings())
        try:
            spec = loaded.signatures["serving_default"]
            assert list(spec.inputs) == ["number"] and list(spec.outputs) == ["output"]
            assert spec.inputs["number"].shape == (-1, 1)
            _, out = loaded.run("", {"number": np.array([[100.0]], np.float32)})
            np.testing.assert_allclose(out["output"], [[100.0 * slope]], rtol=1e-3)
        finally:
            loaded.close()
