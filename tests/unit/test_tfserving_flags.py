"""tensorflow_model_server's flags, translated: renamed, ignored with a warning, refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from swapserve.config.flags import build_parser
from swapserve.config.from_flags import settings_from_args
from swapserve.config.model_settings import SettingsError
from swapserve.config.settings import Settings
from swapserve.config.tfserving_flags import IGNORED, REFUSED, translate

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
    argv += translate(["--rest_api_timeout_in_ms=2500"], OURS)[0]
    assert translate(["--rest_api_timeout_in_ms=0"], OURS)[0] == []  # TF Serving: no timeout
    parser = build_parser()
    settings = settings_from_args(parser.parse_args(argv), parser)
    assert settings.rest_timeout_seconds == 2.5
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
        translate(["--use_alts_credentials"], OURS)
    assert str(exc.value) == (
        "--use_alts_credentials (TensorFlow Serving) is not supported: "
        + REFUSED["use_alts_credentials"]
    )
    assert "--tls-cert" in str(exc.value)
    assert translate(["--use_alts_credentials=false"], OURS)[0] == []  # off: nothing to refuse


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
    assert b.mode == "timeout"  # the file gives a timeout: TF Serving's timing
    params.write_text("max_batch_size { value: 16 }\n")  # none: our eager batcher
    argv, _ = translate(
        ["--model_name=m", f"--model_base_path={tmp_path}", "--enable_batching",
         f"--batching_parameters_file={params}"],
        OURS,
    )  # fmt: skip
    (model,) = settings_from_args(parser.parse_args(argv), parser).models
    assert (model.batching.max_batch_size, model.batching.mode) == (16, "eager")
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


def _settings(argv: list[str]) -> Settings:
    translated, _ = translate(argv, OURS)
    parser = build_parser()
    return settings_from_args(parser.parse_args(translated), parser)


def test_config_polling_and_batching_every_model_of_the_file(tmp_path: Path) -> None:
    config = tmp_path / "models.config"
    config.write_text(
        "model_config_list {\n"
        f"  config {{ name: 'a' base_path: '{tmp_path}/a' model_platform: 'tensorflow' }}\n"
        f"  config {{ name: 'b' base_path: '{tmp_path}/b' model_platform: 'tensorflow' }}\n"
        "}\n"
    )
    settings = _settings(
        [f"--model_config_file={config}", "--model_config_file_poll_wait_seconds=5",
         "--enable_batching", "--max_batch_size=4"]
    )  # fmt: skip
    assert settings.config_poll_seconds == 5.0 and settings.config_path == config
    assert [(m.batching.enabled, m.batching.max_batch_size) for m in settings.models] == [
        (True, 4), (True, 4),
    ]  # fmt: skip
    assert translate(["--model_config_file_poll_wait_seconds=0"], OURS)[0] == []  # read once
    with pytest.raises(SettingsError, match="--latest describes the one model"):
        _settings([f"--model_config_file={config}", "--latest=2"])


def test_monitoring_config_serves_metrics_on_the_rest_port(tmp_path: Path) -> None:
    monitoring = tmp_path / "monitoring.config"
    base = ["--model_name=m", f"--model_base_path={tmp_path}", "--rest_api_port=8501"]
    for text, path in (
        ("prometheus_config { enable: true path: '/metrics/here' }", "/metrics/here"),
        ("prometheus_config { enable: true }", "/monitoring/prometheus/metrics"),
        ("prometheus_config { enable: false path: '/x' }", None),
    ):
        monitoring.write_text(text)
        settings = _settings([*base, f"--monitoring_config_file={monitoring}"])
        assert settings.rest_metrics_path == path
    monitoring.write_text("prometheus_config {\n  enable: yes\n}")
    with pytest.raises(SettingsError, match=r"monitoring\.config:2:"):
        _settings([*base, f"--monitoring_config_file={monitoring}"])
    monitoring.write_text("prometheus_config { enable: true }")
    with pytest.raises(SettingsError, match="need --rest-port"):
        _settings([*base[:2], f"--monitoring_config_file={monitoring}"])


def test_model_repository_flags(tmp_path: Path) -> None:
    (tmp_path / "m").mkdir()
    settings = _settings([f"--model_repository={tmp_path}", "--poll-seconds=0.5"])
    (model,) = settings.models
    assert (model.name, model.poll_seconds) == ("m", 0.5)
    assert settings.model_repository == tmp_path
    for argv, words in (
        ([f"--model-repository={tmp_path}", "--model-name=x"], "--model-name describes"),
        ([f"--model-repository={tmp_path}", f"--config={tmp_path}/c"], "not both"),
        ([f"--model-repository={tmp_path}/nope"], "not a directory"),
        (
            ["--model-name=m", f"--export-root={tmp_path}", "--config-poll-seconds=1"],
            "needs --config",
        ),
    ):
        with pytest.raises(SettingsError, match=words):
            _settings(argv)


def test_tags_and_channel_arguments_are_honoured(tmp_path: Path) -> None:
    from swapserve.config.channel_args import parse_channel_arguments

    argv, warnings = translate(
        ["--model_name=m", f"--model_base_path={tmp_path}", "--saved_model_tags=serve,gpu",
         "--grpc_channel_arguments=grpc.max_connection_age_ms=60000,grpc.primary_user_agent=x"],
        OURS,
    )  # fmt: skip
    assert warnings == []
    argv += translate(["--rest_api_timeout_in_ms=2500"], OURS)[0]
    assert translate(["--rest_api_timeout_in_ms=0"], OURS)[0] == []  # TF Serving: no timeout
    parser = build_parser()
    settings = settings_from_args(parser.parse_args(argv), parser)
    assert settings.rest_timeout_seconds == 2.5
    assert settings.session.saved_model_tags == "serve,gpu"
    assert parse_channel_arguments(settings.grpc_channel_arguments) == (
        ("grpc.max_connection_age_ms", 60000),
        ("grpc.primary_user_agent", "x"),
    )
    with pytest.raises(SettingsError, match="expected KEY=VALUE pairs"):
        Settings(models=settings.models, grpc_channel_arguments="grpc.x").validate()
