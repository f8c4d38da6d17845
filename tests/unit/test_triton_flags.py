"""tritonserver's flags, translated: Triton's ports first, control modes, ignored, refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from swapserve.config.flags import build_parser
from swapserve.config.from_flags import settings_from_args
from swapserve.config.model_settings import SettingsError
from swapserve.config.triton_flags import translate


def test_a_production_command_line(tmp_path: object) -> None:
    argv, warnings = translate(
        [f"--model-repository={tmp_path}", "--model-control-mode=poll",
         "--repository-poll-secs=30", "--strict-model-config=false", "--log-verbose=1",
         "--exit-timeout-secs", "5", "--load-model=*"]
    )  # fmt: skip
    parser = build_parser()
    args = parser.parse_args(argv)
    settings = settings_from_args(args, parser)
    assert (settings.port, settings.rest_port, settings.metrics_port) == (8001, 8000, 8002)
    assert settings.config_poll_seconds == 30 and settings.grace_seconds == 5
    assert args.log_level == "DEBUG"
    assert [w.split(" (")[0] for w in warnings] == ["--strict-model-config", "--load-model *"]
    assert "applies with --model-control-mode=explicit" in warnings[1]


def test_ports_modes_and_switches(tmp_path: object) -> None:
    repo = f"--model-repository={tmp_path}"
    parser = build_parser()
    argv, _ = translate([repo, "--grpc-port=9001", "--allow-http=false", "--allow-metrics=0"])
    settings = settings_from_args(parser.parse_args(argv), parser)
    assert (settings.port, settings.rest_port, settings.metrics_port) == (9001, None, None)
    argv, _ = translate([repo])  # Triton's default mode, none: the repository is read once
    assert settings_from_args(parser.parse_args(argv), parser).config_poll_seconds == 0
    argv, _ = translate([repo, "--model-control-mode", "poll"])  # every 15 s, as Triton
    assert settings_from_args(parser.parse_args(argv), parser).config_poll_seconds == 15
    for flags, words in (
        (["--model-control-mode=sometimes"], "expected none, poll or explicit"),
        (["--allow-grpc=false"], "always serves gRPC"),
        ([repo, "--model-repository=/b"], "more than one --model-repository"),
        (["--allow-http=maybe"], "expected true or false"),
        (["stray"], "unexpected argument"),
    ):
        with pytest.raises(SettingsError, match=words):
            translate(flags)


def test_explicit_mode_loads_only_the_named_models(tmp_path: Path) -> None:
    for name in ("a", "b", "c"):
        (tmp_path / name).mkdir()
    parser = build_parser()

    def at_start(*flags: str) -> set[str]:
        argv, _ = translate([f"--model-repository={tmp_path}", "--model-control-mode=explicit",
                             *flags])  # fmt: skip
        settings = settings_from_args(parser.parse_args(argv), parser)
        assert settings.config_poll_seconds == 0  # explicit: nothing changes unless asked
        return settings.loaded_at_start({"a", "b", "c"})

    assert at_start() == set()
    assert at_start("--load-model=a", "--load-model", "c") == {"a", "c"}
    assert at_start("--load-model=*") == {"a", "b", "c"}
    with pytest.raises(SettingsError, match="--startup-models: nope not in model repository"):
        at_start("--load-model=nope")
    argv = ["--model-name", "m", "--export-root", str(tmp_path), "--startup-models", "a"]
    with pytest.raises(SettingsError, match="--startup-models needs --model-repository"):
        settings_from_args(parser.parse_args(argv), parser)
