"""The YAML config file: parsing, every error naming its key, the shipped examples."""

from __future__ import annotations

from pathlib import Path

import pytest

from swapserve.config.flags import build_parser
from swapserve.config.from_flags import settings_from_args
from swapserve.config.model_settings import ModelSettings, SettingsError, VersionPolicy
from swapserve.config.yaml_file import load_models, parse_config, parse_models

REPO = Path(__file__).resolve().parents[2]


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_config_file_parsing(tmp_path: Path) -> None:
    config = _write(
        tmp_path / "swapserve.yaml",
        """
models:
  - name: seed
    export_root: models/seed          # relative to this file
    versions: {latest: 2}
    labels: {stable: 1795300968}
    batching: {enabled: true, max_batch_size: 16, allowed_batch_sizes: [8, 16]}
  - name: other
    export_root: /srv/other
    versions: {specific: [3, 5]}
    poll_seconds: 0.5
    warm_up: false
""",
    )
    seed, other = load_models(config)
    assert seed.export_root == tmp_path / "models" / "seed"
    assert seed.versions == VersionPolicy(latest=2)
    assert seed.labels == {"stable": 1795300968}
    assert seed.batching.enabled and seed.batching.allowed_batch_sizes == (8, 16)
    assert other == ModelSettings(
        "other",
        Path("/srv/other"),
        poll_seconds=0.5,
        warm_up=False,
        versions=VersionPolicy(specific=(3, 5)),
    )


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ("[1, 2]", "c.yaml: expected a mapping with a 'models' list"),
        ("model: []", "c.yaml: unknown key 'model' (known keys: models, server)"),
        ("models: []", "c.yaml: 'models' must be a non-empty list of models"),
        ("models: [{export_root: /x}]", "c.yaml: models[0]: missing required key 'name'"),
        (
            "models: [{name: a, export_root: /x, polls: 1}]",
            "c.yaml: models[0]: unknown key 'polls' (known keys: name, export_root,",
        ),
        (
            "models: [{name: a, export_root: /x, batching: {max_batch_size: x}}]",
            "c.yaml: models[0].batching.max_batch_size: expected an integer, got 'x'",
        ),
        (
            "models: [{name: a, export_root: /x, batching: {enabled: 1}}]",
            "c.yaml: models[0].batching.enabled: expected true or false, got 1",
        ),
        (
            "models: [{name: a, export_root: /x, versions: {latest: 0}}]",
            "c.yaml: models[0]: model 'a': versions.latest must be >= 1, got 0",
        ),
        (
            "models: [{name: a, export_root: /x, versions: {specific: 3}}]",
            "c.yaml: models[0].versions.specific: expected a list, got 3",
        ),
        (
            "models: [{name: a, export_root: /x, labels: {stable: v1}}]",
            "c.yaml: models[0].labels.stable: expected an integer, got 'v1'",
        ),
        (
            "models: [{name: a, export_root: /x, labels: {'7': 1}}]",
            "label '7': use letters",
        ),
        (
            "models: [{name: a, export_root: /x}, {name: a, export_root: /y}]",
            "c.yaml: models[1]: model name 'a' is configured twice",
        ),
        ("models: [{name: 'a b', export_root: /x}]", "c.yaml: models[0]: model name 'a b'"),
        (
            "models: [{name: a, export_root: /x, poll_seconds: null}]",
            "c.yaml: models[0].poll_seconds: expected a number, got nothing (null)",
        ),
        (
            "{models: [{name: a, export_root: /x}], server: {rest_port: '8501'}}",
            "c.yaml: server.rest_port: expected an integer, got '8501'",
        ),
        (
            "{models: [{name: a, export_root: /x}], server: {token: abc}}",
            "c.yaml: server: unknown key 'token' (known keys: host, port, rest_port,",
        ),
        (
            "{models: [{name: a, export_root: /x}], server: [1]}",
            "c.yaml: server: expected a mapping",
        ),
    ],
)
def test_config_errors_name_the_key(tmp_path: Path, document: str, message: str) -> None:
    import yaml

    with pytest.raises(SettingsError) as exc:
        parse_models(yaml.safe_load(document), "c.yaml", base=tmp_path)
    assert message in str(exc.value)


def test_config_file_not_yaml(tmp_path: Path) -> None:
    with pytest.raises(SettingsError) as exc:
        load_models(_write(tmp_path / "c.yaml", "models: [unclosed"))
    assert "c.yaml: not valid YAML: while parsing a flow sequence" in str(exc.value)


def test_shipped_config_examples_parse(tmp_path: Path) -> None:
    """The Kubernetes ConfigMap's config and docs/configuration.md's example are valid swapserve configs."""
    import yaml

    configmap = yaml.safe_load((REPO / "deploy" / "kubernetes" / "configmap.yaml").read_text())
    (model,) = parse_models(yaml.safe_load(configmap["data"]["swapserve.yaml"]), "cm", tmp_path)
    assert (model.name, model.export_root) == ("seed", Path("/models/seed"))
    doc = (REPO / "docs" / "configuration.md").read_text()
    example = doc.split("`swapserve --config swapserve.yaml`:\n\n```yaml\n")[1].split("```")[0]
    config = parse_config(yaml.safe_load(example), "configuration.md", tmp_path)
    assert config.server == {"rest_port": 8501, "metrics_port": 9090}
    seed, ranker = config.models
    assert seed.versions == VersionPolicy(latest=2) and seed.labels == {"stable": 1795300968}
    assert ranker.versions == VersionPolicy(specific=(17, 18))


def test_server_keys_apply_where_flags_stay_at_their_defaults(tmp_path: Path) -> None:
    config = _write(
        tmp_path / "c.yaml",
        "server: {rest_port: 8501, port: 9000, metrics_port: 0, drain_seconds: 0}\n"
        "models: [{name: a, export_root: a}]\n",
    )
    parser = build_parser()
    settings = settings_from_args(parser.parse_args(["--config", str(config)]), parser)
    assert (settings.rest_port, settings.port, settings.metrics_port) == (8501, 9000, 0)
    assert settings.drain_seconds == 0.0
    given = parser.parse_args(["--config", str(config), "--rest-port", "0", "--port", "1234"])
    settings = settings_from_args(given, parser)
    assert (settings.rest_port, settings.port, settings.metrics_port) == (0, 1234, 0)
    out_of_range = _write(tmp_path / "d.yaml", config.read_text().replace("8501", "70000"))
    with pytest.raises(SettingsError, match="rest port must be from 0 to 65535, got 70000"):
        settings_from_args(parser.parse_args(["--config", str(out_of_range)]), parser)


def test_tf_serving_text_config(tmp_path: Path) -> None:
    """TF Serving's ModelServerConfig in text format works wherever a config file does."""
    config = _write(
        tmp_path / "models.config",
        """# a TF Serving config
model_config_list {
  config {
    name: "a"
    base_path: "/models/a"
    model_platform: "tensorflow"
    model_version_policy { specific { versions: 1 versions: 2 } }
    version_labels { key: "stable" value: 1 }
  }
  config { name: "b" base_path: "/models/b" }
}
""",
    )
    a, b = load_models(config)
    assert (a.name, a.export_root, a.versions, a.labels) == (
        "a", Path("/models/a"), VersionPolicy(specific=(1, 2)), {"stable": 1},
    )  # fmt: skip
    assert (b.name, b.versions) == ("b", VersionPolicy(latest=1))
    bad = _write(tmp_path / "bad.config", "model_config_list {\n  config { nme: 'a' }\n}\n")
    with pytest.raises(SettingsError) as exc:
        load_models(bad)
    assert str(exc.value).startswith("bad.config:2:")
    assert 'has no field named "nme"' in str(exc.value)
    other = _write(tmp_path / "p.config", "model_config_list { config { name: 'a' base_path: '/a' "
                   "model_platform: 'pytorch' } }")  # fmt: skip
    with pytest.raises(SettingsError, match=r"p.config: model_config_list.config\[0\]: "
                       "model_platform 'pytorch' is not served here"):  # fmt: skip
        load_models(other)


def test_rollout_settings_per_model_and_from_flags(tmp_path: Path) -> None:
    """The lifecycle doc's YAML example parses; flags set the one-model form and TF Serving's
    text config; with YAML they are refused (set per model); bad values name the key."""
    import yaml

    from swapserve.config.rollout_settings import RolloutSettings

    doc = (REPO / "docs" / "lifecycle.md").read_text()
    example = doc.split("under `rollout`:\n\n```yaml\n")[1].split("```")[0]
    ranker, embedder = parse_models(yaml.safe_load(example), "lifecycle.md", tmp_path)
    assert ranker.rollout == RolloutSettings(
        canary_percent=10, canary_seconds=300, gate_max_divergence=0.05
    )
    assert not embedder.rollout.gates and embedder.rollout.gate_latency_ratio == 3.0
    parser = build_parser()
    one = ["--model-name", "m", "--export-root", str(tmp_path)]
    flags = ["--canary-percent", "5", "--no-gates", "--gate-latency-ratio", "0"]
    settings = settings_from_args(parser.parse_args([*one, *flags]), parser)
    assert settings.models[0].rollout == RolloutSettings(
        gates=False, gate_latency_ratio=0.0, canary_percent=5
    )
    text = _write(
        tmp_path / "models.config",
        'model_config_list { config { name: "t" base_path: "/models/t" } }\n',
    )
    settings = settings_from_args(parser.parse_args(["--config", str(text), *flags]), parser)
    assert settings.models[0].rollout.canary_percent == 5
    config = _write(tmp_path / "c.yaml", "models: [{name: a, export_root: a}]\n")
    with pytest.raises(SettingsError, match="--no-gates describes the one model"):
        settings_from_args(parser.parse_args(["--config", str(config), *flags]), parser)
    bad = _write(
        tmp_path / "b.yaml", "models: [{name: a, export_root: a, rollout: {canary_percent: 100}}]\n"
    )
    with pytest.raises(
        SettingsError, match=r"rollout.canary_percent must be from 0 to less than 100"
    ):
        load_models(bad)
    bad = _write(tmp_path / "k.yaml", "models: [{name: a, export_root: a, rollout: {canary: 5}}]\n")
    with pytest.raises(SettingsError, match=r"models\[0\].rollout: unknown key 'canary'"):
        load_models(bad)
    with pytest.raises(SettingsError, match="gate_latency_ratio must be 0 \\(off\\) or >= 1"):
        settings_from_args(parser.parse_args([*one, "--gate-latency-ratio", "0.5"]), parser)
