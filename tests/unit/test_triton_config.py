"""Triton's config.pbtxt -> model settings (swapserve/triton.py): the honoured keys, the
ignored ones, and errors that name the file, line and key. No TensorFlow."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from google.protobuf import text_format
from hypothesis import given, settings
from hypothesis import strategies as st

from swapserve.apis import kserve_v2
from swapserve.config import triton
from swapserve.config.model_settings import ModelSettings, SettingsError, TensorDeclaration

BASE = ModelSettings("base", Path(), poll_seconds=0.5, warm_up=False)

# A config as Triton's docs write them: keys swapserve applies and keys it does not.
FULL = """
name: "m"
platform: "tensorflow_savedmodel"
max_batch_size: 8
version_policy: { specific: { versions: [1, 3] } }
input [
  { name: "x"  data_type: TYPE_FP32  dims: [ 1 ] }  # a comment with { braces }
]
output [ { name: "y" data_type: TYPE_FP32 dims: [1] label_filename: "a}b.txt" } ]
instance_group [ { count: 2 kind: KIND_CPU } ]
dynamic_batching { preferred_batch_size: [ 4, 8 ] max_queue_delay_microseconds: 100 }
model_warmup [ { name: "w" batch_size: 1
  inputs { key: "x" value: { data_type: TYPE_FP32 dims: [1] zero_data: true } } } ]
parameters: { key: "a" value: { string_value: "b" } }
"""


def _settings(text: str | None, name: str = "m") -> tuple[ModelSettings, tuple[str, ...]]:
    return triton.model_settings(name, "/repo/" + name, text, BASE)


def test_honoured_keys_map_onto_settings_and_the_rest_are_named() -> None:
    model, ignored = _settings(FULL)
    assert model.name == "m" and model.export_root == Path("/repo/m")
    assert model.versions.specific == (1, 3)
    b = model.batching
    assert (b.enabled, b.max_batch_size, b.batch_timeout_micros) == (True, 8, 100)
    assert b.preferred_batch_sizes == (4, 8)
    assert ignored == ("parameters",)
    assert (model.poll_seconds, model.warm_up) == (0.5, False)  # from the base
    declared = model.declared
    assert declared.batch_dim and declared.tensors == (
        TensorDeclaration("x", 1, (1,)),  # TYPE_FP32 is DT_FLOAT (1)
        TensorDeclaration("y", 1, (1,), output=True),
    )
    assert json.loads(declared.as_written) == {
        "max_batch_size": 8,
        "input": [{"name": "x", "data_type": "TYPE_FP32", "dims": [1]}],
        "output": [
            {"name": "y", "data_type": "TYPE_FP32", "dims": [1], "label_filename": "a}b.txt"}
        ],
        "instance_group": [{"count": 2, "kind": "KIND_CPU"}],
    }


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("input [ { data_type: TYPE_FP32 dims: [1] } ]", "an input has no name"),
        ('output [ { name: "y" }, { name: "y" } ]', "output 'y' is listed twice"),
        ('input [ { name: "x" dims: [-2] } ]', "dims must be >= -1"),
        ('input [ { name: "x" data_type: TYPE_NOPE } ]', "TYPE_NOPE"),
    ],
)
def test_bad_inputs_and_outputs_name_the_key(text: str, words: str) -> None:
    with pytest.raises(SettingsError, match=words):
        _settings(text)


def test_no_config_means_tritons_defaults() -> None:
    model, ignored = _settings(None)
    assert model.versions.latest == 1 and not model.versions.specific
    assert not model.batching.enabled and ignored == ()


@pytest.mark.parametrize(
    ("policy", "latest"),
    [("{ latest: { num_versions: 2 } }", 2), ("{ all: {} }", 2**31), ("{ latest {} }", 1)],
)
def test_version_policies(policy: str, latest: int) -> None:
    model, _ = _settings(f"version_policy: {policy}")
    assert model.versions.latest == latest


def test_max_batch_size_without_dynamic_batching_does_not_batch() -> None:
    model, _ = _settings("max_batch_size: 16")
    assert not model.batching.enabled


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ('name: "m"\nmax_batch_size: lots\n', "m/config.pbtxt:2:"),
        ('name: "other"', "differs from the model's directory name 'm'"),
        ('platform: "onnxruntime_onnx"', "platform 'onnxruntime_onnx' is not served here"),
        ('backend: "pytorch"', "backend 'pytorch' is not served here"),
        ("dynamic_batching {}", "dynamic_batching needs max_batch_size > 0"),
        ("max_batch_size: 4 dynamic_batching { preferred_batch_size: 8 }", "preferred_batch_sizes"),
        ("max_batch_size: -1", "max_batch_size must be >= 0"),
        ("version_policy { specific {} }", "version_policy.specific lists no versions"),
        (
            'model_warmup [{ name: "w" inputs { key: "x" value { input_data_file: "raw" } } }]',
            "input 'x' reads input_data_file 'raw'",
        ),
    ],
)
def test_errors_name_the_file_and_what_is_wrong(text: str, words: str) -> None:
    with pytest.raises(SettingsError, match=r"^m/config\.pbtxt") as err:
        _settings(text)
    assert words in str(err.value)


def test_a_model_name_triton_allows_but_swapserve_does_not_is_refused() -> None:
    with pytest.raises(SettingsError, match="model name"):
        _settings(None, name="-dash")


_VALUES = st.one_of(
    st.integers(-5, 5), st.text(alphabet='ab{}[]<>#:"\\ \n', max_size=6), st.booleans()
)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(["ka", "kb", "kc", "kd"]), _VALUES, max_size=4))
def test_top_level_keys_are_found_whatever_the_values_hold(fields: dict[str, object]) -> None:
    """Keys are found past strings with brackets, comments and nested messages."""
    lines = []
    for key, value in fields.items():
        if isinstance(value, str):
            escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
            lines.append(f'{key}: "{escaped}"  # {value!r}')
        elif isinstance(value, bool):
            lines.append(f"{key} {{ inner: {str(value).lower()} deeper {{ x: [1, 2] }} }}")
        else:
            lines.append(f"{key}: [{value}, {value}]")
    assert triton._top_level_keys("\n".join(lines)) == list(fields)


def test_the_message_reads_what_text_format_writes() -> None:
    config = kserve_v2.ModelConfig()
    config.name = "m"
    config.version_policy.latest.num_versions = 3
    config.max_batch_size = 4
    config.dynamic_batching.preferred_batch_size.extend([2, 4])
    config.model_warmup.add(name="w").inputs["x"].zero_data = True
    text = text_format.MessageToString(config)
    model, ignored = _settings(text)
    assert model.versions.latest == 3 and model.batching.preferred_batch_sizes == (2, 4)
    assert ignored == ()
