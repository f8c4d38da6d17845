"""A Triton model repository served as it is (``--model-repository``): one model per directory,
``<version>/model.savedmodel/`` or the SavedModel in the version directory, ``config.pbtxt``'s
honoured keys, models added and removed while others answer, and tritonclient unchanged."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc as triton
from tritonclient.utils import InferenceServerException

from helpers import (
    HALF_PLUS_THREE,
    HALF_PLUS_TWO,
    HALF_PLUS_TWO_TF2,
    CallLoad,
    serving_settings,
    wait_for,
)
from swapserve.config.flags import build_parser
from swapserve.config.from_flags import settings_from_args

# As Triton's docs write a TensorFlow model's config: the keys swapserve applies (max_batch_size,
# dynamic_batching, version_policy, input/output checked against the signature, instance_group
# reported) and one it does not (parameters).
HP2_CONFIG = """
name: "hp2"
platform: "tensorflow_savedmodel"
max_batch_size: 8
version_policy: { specific: { versions: [1] } }
input [ { name: "x" data_type: TYPE_FP32 dims: [ 1 ] } ]
output [ { name: "y" data_type: TYPE_FP32 dims: [ 1 ] } ]
instance_group [ { count: 1 kind: KIND_CPU } ]
parameters: { key: "a" value: { string_value: "b" } }
dynamic_batching { preferred_batch_size: [ 4 ] max_queue_delay_microseconds: 2000 }
"""


def _triton_version(src: Path, model_dir: Path, version: int) -> None:
    """``model_dir/<version>/model.savedmodel/``, staged outside the repository first."""
    staging = model_dir.parent.parent / f"staging-{model_dir.name}-{version}"
    shutil.copytree(src, staging / "model.savedmodel")
    model_dir.mkdir(parents=True, exist_ok=True)
    staging.rename(model_dir / str(version))


def _infer(
    client: triton.InferenceServerClient, model: str, x: float, shape: tuple[int, ...] = (1, 1)
) -> float:
    inp = triton.InferInput("x", list(shape), "FP32")
    inp.set_data_from_numpy(np.full(shape, x, np.float32))
    return float(client.infer(model, [inp]).as_numpy("y").flat[0])


def _ready(client: triton.InferenceServerClient, model: str) -> bool:
    try:
        return bool(client.is_model_ready(model))
    except InferenceServerException:
        return False


def test_a_triton_repository_with_models_added_and_removed_under_load(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    repo = tmp_path / "repo"
    _triton_version(HALF_PLUS_TWO, repo / "hp2", 1)
    _triton_version(HALF_PLUS_TWO, repo / "hp2", 2)  # not in version_policy: never served
    (repo / "hp2" / "config.pbtxt").write_text(HP2_CONFIG)
    shutil.copytree(HALF_PLUS_THREE, repo / "hp3" / "123")  # the SavedModel directly
    (repo / "broken").mkdir()
    (repo / "broken" / "config.pbtxt").write_text('platform: "onnxruntime_onnx"')
    parser = build_parser()
    args = parser.parse_args(
        [f"--model-repository={repo}", "--host", "127.0.0.1", "--port", "0", "--poll-seconds", "0.2"]
    )  # fmt: skip
    settings = settings_from_args(args, parser)
    assert sorted(m.name for m in settings.models) == ["hp2", "hp3"]
    with serving_settings(settings) as app:
        client = triton.InferenceServerClient(f"127.0.0.1:{app.port}")
        assert _infer(client, "hp2", 2.0) == 3.0 and _infer(client, "hp3", 2.0) == 4.0
        assert client.get_model_metadata("hp2").versions == ["1"]
        hp2 = app.registry.get("hp2").settings.batching
        assert (hp2.enabled, hp2.max_batch_size, hp2.batch_timeout_micros) == (True, 8, 2000)
        assert hp2.preferred_batch_sizes == (4,)
        assert not _ready(client, "broken")

        with CallLoad([lambda: _infer(client, "hp2", 2.0)], threads=4) as load:
            load.wait_for_answers(20)
            _triton_version(HALF_PLUS_TWO_TF2, repo / "tf2", 7)  # a model added later
            wait_for(lambda: _ready(client, "tf2"), what="the added model")
            assert _infer(client, "tf2", 2.0, shape=(1,)) == 3.0
            shutil.rmtree(repo / "hp3")  # a model removed
            wait_for(lambda: app.registry.find("hp3") is None, what="hp3 to go")
            load.wait_for_answers(20)
        assert load.errors == [] and load.ok >= 40
        with pytest.raises(InferenceServerException, match="not served here"):
            _infer(client, "hp3", 2.0)
        batched = app.metrics.registry.get_sample_value(
            "swapserve_batch_size_count", {"model": "hp2"}
        )
        assert batched is not None and batched >= 1
        client.close()
    log = caplog.text
    assert log.count("platform 'onnxruntime_onnx' is not served here") == 1
    assert log.count("hp2/config.pbtxt: not applied by swapserve: parameters") == 1
