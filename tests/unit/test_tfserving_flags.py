"""tensorflow_model_server's flags, translated: renamed, ignored with a warning, refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from swapserve.cli import build_parser, settings_from_args
from swapserve.settings import SettingsError
from swapserve.tfserving_flags import IGNORED, REFUSED, translate

OURS = build_parser()._option_string_actions


def test_tf_servings_documented_command_line(tmp_path: Path) -> None:
    """The half_plus_two command line of TF Serving's docs, unchanged."""
    argv, warnings = translate(
        [
            "--rest_api_port=8501",
            "--model_name=half_plus_two",
            f"--model_base_path={tmp_path}",
            "--port",
            "8500",
            "--enable_batching",
            "--enable_model_warmup=false",
            "--tensorflow_intra_op_parallelism=2",
            "--grpc_max_threads=8",
            "--file_system_poll_wait_seconds=3",
        ],
        OURS,
    )
    assert warnings == []
    parser = build_parser()
    settings = settings_from_args(parser.parse_args(argv), parser)
    (model,) = settings.models
    assert (model.name, model.export_root, model.poll_seconds) == ("half_plus_two", tmp_path, 3.0)
    assert model.batching.enabled and not model.warm_up
    assert (settings.rest_port, settings.port, settings.grpc_threads) == (8501, 8500, 8)
    assert settings.session.intra_op_threads == 2


def test_special_values_and_spellings() -> None:
    assert translate(["--rest_api_port=0"], OURS)[0] == []  # TF Serving: 0 = REST off
    assert translate(["--enable_batching=false"], OURS)[0] == []
    assert translate(["--enable_model_warmup=true"], OURS)[0] == []
    assert translate(["--tensorflow_session_parallelism=3"], OURS)[0] == [
        "--intra-op-threads", "3", "--inter-op-threads", "3",
    ]  # fmt: skip
    # Our own flags with underscores; values may be separate or after '='.
    assert translate(["--export_root=/x", "--max_batch_size", "8"], OURS)[0] == [
        "--export-root=/x", "--max-batch-size", "8",
    ]  # fmt: skip
    assert translate(["--model_config_file", "m.config"], OURS)[0] == ["--config", "m.config"]
    with pytest.raises(SettingsError, match="expected true or false"):
        translate(["--enable_batching=maybe"], OURS)
    with pytest.raises(SettingsError, match="always watches the export root"):
        translate(["--file_system_poll_wait_seconds=0"], OURS)


def test_ignored_flags_warn_and_refused_flags_say_what_to_use() -> None:
    argv, warnings = translate(["--rest_api_num_threads=4", "--num_load_threads", "2"], OURS)
    assert argv == []
    assert warnings == [
        "--rest_api_num_threads (TensorFlow Serving) is ignored: "
        + IGNORED["rest_api_num_threads"],
        "--num_load_threads (TensorFlow Serving) is ignored: " + IGNORED["num_load_threads"],
    ]
    with pytest.raises(SettingsError) as exc:
        translate(["--ssl_config_file=/etc/ssl.txt"], OURS)
    assert str(exc.value) == (
        "--ssl_config_file (TensorFlow Serving) is not supported: " + REFUSED["ssl_config_file"]
    )
    assert "--tls-cert" in str(exc.value)
    assert translate(["--prefer_tflite_model=false"], OURS)[0] == []  # off: nothing to refuse


def test_batching_parameters_file(tmp_path: Path) -> None:
    """TF Serving's BatchingParameters text format becomes our batching flags."""
    params = tmp_path / "batching.txt"
    params.write_text(
        "max_batch_size { value: 128 }\nbatch_timeout_micros { value: 0 }\n"
        "max_enqueued_batches { value: 1000000 }\nnum_batch_threads { value: 8 }\n"
        "allowed_batch_sizes: 64\nallowed_batch_sizes: 128\nthread_pool_name { value: 'x' }\n"
    )
    argv, _ = translate(
        ["--model_name=m", f"--model_base_path={tmp_path}", "--enable_batching",
         f"--batching_parameters_file={params}"],
        OURS,
    )  # fmt: skip
    parser = build_parser()
    (model,) = settings_from_args(parser.parse_args(argv), parser).models
    b = model.batching
    assert b.enabled and (b.max_batch_size, b.batch_timeout_micros) == (128, 0)
    assert (b.max_enqueued_batches, b.num_batch_threads) == (1000000, 8)
    assert b.allowed_batch_sizes == (64, 128)
    for text, words in (
        ("max_batch_size { value: 8 }\nmax_batch_sise { value: 8 }", "batching.txt:2:"),
        ("pad_variable_length_inputs: true", "pad_variable_length_inputs: true is not supported"),
        ("enable_large_batch_splitting { value: true }", "enable_large_batch_splitting"),
    ):
        params.write_text(text)
        with pytest.raises(SettingsError, match=words):
            translate([f"--batching_parameters_file={params}"], OURS)
    with pytest.raises(SettingsError, match="cannot read --batching_parameters_file"):
        translate([f"--batching_parameters_file={tmp_path / 'nope'}"], OURS)
