"""tritonserver's flags, translated: Triton's ports first, control modes, ignored, refused."""

from __future__ import annotations

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
        (["--model-control-mode=explicit"], "is not supported"),
        (["--allow-grpc=false"], "always serves gRPC"),
        ([repo, "--model-repository=/b"], "more than one --model-repository"),
        (["--allow-http=maybe"], "expected true or false"),
        (["stray"], "unexpected argument"),
    ):
        with pytest.raises(SettingsError, match=words):
            translate(flags)
