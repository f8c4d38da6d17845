"""What in deploy/ kubernetes-validate cannot check: the KServe runtime's and the overlays'
arguments are valid flags, the alerts query documented metrics, the ServiceMonitor scrapes a
port the Services have, the image installs hash-checked what CI installs."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from swapserve.config.flags import build_parser
from swapserve.config.from_flags import settings_from_args
from swapserve.config.triton_flags import translate

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_the_kserve_runtime_starts_swapserve_on_kserves_ports() -> None:
    runtime = yaml.safe_load((DEPLOY / "kserve" / "servingruntime.yaml").read_text())
    (container,) = runtime["spec"]["containers"]
    args = [a.replace("{{.Name}}", "half-plus-two") for a in container["args"]]
    parser = build_parser()
    settings = settings_from_args(parser.parse_args(args), parser)
    assert (settings.rest_port, settings.port) == (8080, 8081)  # KServe's HTTP and gRPC ports
    assert settings.models[0].export_root == Path("/mnt/models")  # the storage initializer's
    assert container["ports"][0]["containerPort"] == settings.port
    service = yaml.safe_load((DEPLOY / "kserve" / "inferenceservice.yaml").read_text())
    assert service["spec"]["predictor"]["model"]["runtime"] == runtime["metadata"]["name"]


def test_every_alert_queries_documented_metrics_and_the_monitor_a_real_port() -> None:
    documented = set(
        re.findall(r"^\| `(swapserve_\w+)`", (DOCS / "operations.md").read_text(), re.M)
    )
    rules = yaml.safe_load((DEPLOY / "prometheus" / "prometheusrule.yaml").read_text())
    alerts = [r for group in rules["spec"]["groups"] for r in group["rules"]]
    assert len(alerts) >= 6
    for alert in alerts:
        used = set(re.findall(r"swapserve_\w+", alert["expr"]))
        assert used and used <= documented, (alert["alert"], used - documented)
        assert alert["expr"].count("(") == alert["expr"].count(")"), alert["alert"]
    monitor = yaml.safe_load((DEPLOY / "prometheus" / "servicemonitor.yaml").read_text())
    services = list(yaml.safe_load_all((DEPLOY / "kubernetes" / "service.yaml").read_text()))
    ports = {p["name"] for s in services for p in s["spec"]["ports"]}
    assert {e["port"] for e in monitor["spec"]["endpoints"]} <= ports


def test_the_image_installs_what_ci_installs_hash_checked() -> None:
    """The image's dependency install is deploy/install-runtime.sh, which make setup (every CI
    run) runs too; it installs only hash-checked files, and every pin has its hashes."""
    root = DEPLOY.parent
    script = (DEPLOY / "install-runtime.sh").read_text()
    assert "--require-hashes" in script and "-r deploy/runtime-hashes.lock" in script
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert "RUN deploy/install-runtime.sh python\n" in dockerfile
    assert re.search(r"pip install --no-deps \./client", dockerfile)  # ours, after: no deps
    makefile = (root / "Makefile").read_text()
    setup = makefile[makefile.index("$(STAMP):") :].split("\n\n")[0]
    assert "\tdeploy/install-runtime.sh $(BIN)/python\n" in setup
    entries = re.split(r"\n(?=\S)", (DEPLOY / "runtime-hashes.lock").read_text().strip())
    pins = [e for e in entries if not e.startswith("#")]
    assert len(pins) > 50
    for entry in pins:
        assert re.fullmatch(r"\S+==\S+( \\\n    --hash=sha256:[0-9a-f]{64})+", entry), entry


def _overlay_args(overlay: str) -> list[str]:
    """The container's args after an overlay's JSON patches (a kustomize render, by hand: the
    rendered manifests are validated by make lint with kubectl kustomize)."""
    base = yaml.safe_load((DEPLOY / "kubernetes" / "deployment.yaml").read_text())
    args = list(base["spec"]["template"]["spec"]["containers"][0]["args"])
    kustomization = yaml.safe_load(
        (DEPLOY / "overlays" / overlay / "kustomization.yaml").read_text()
    )
    for patch in kustomization.get("patches", []):
        if patch["target"]["kind"] != "Deployment":
            continue
        for op in yaml.safe_load(patch["patch"]):
            if op["path"].endswith("/args/-"):
                args.append(op["value"])
            elif op["path"].endswith("/args"):
                args = list(op["value"])
    return args


def test_every_overlay_starts_a_valid_command_line(tmp_path: Path) -> None:
    config = tmp_path / "swapserve.yaml"
    config.write_text(f"models:\n  - {{name: seed, export_root: {tmp_path}}}\n")
    parser = build_parser()
    for overlay in ("cpu", "gpu"):
        args = [
            a.replace("/etc/swapserve/swapserve.yaml", str(config)) for a in _overlay_args(overlay)
        ]
        settings = settings_from_args(parser.parse_args(args), parser)
        assert (settings.port, settings.rest_port, settings.metrics_port) == (8500, 8501, 9090)
    (tmp_path / "repo" / "m").mkdir(parents=True)
    args = [a.replace("=/models", f"={tmp_path / 'repo'}") for a in _overlay_args("triton")]
    translated, warnings = translate(args)
    settings = settings_from_args(parser.parse_args(translated), parser)
    assert (settings.port, settings.rest_port, settings.metrics_port) == (8001, 8000, 8002)
    assert settings.config_poll_seconds == 30 and warnings == []
