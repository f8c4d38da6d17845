"""deploy/kserve and deploy/prometheus (custom resources kubernetes-validate cannot check):
the runtime's arguments are valid swapserve flags, the alerts query documented metrics, the
ServiceMonitor scrapes a port the Services have."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from swapserve.config.flags import build_parser
from swapserve.config.from_flags import settings_from_args

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
