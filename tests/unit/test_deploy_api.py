"""The API's deployment: a compose service and a k8s Deployment + Service with probes on /healthz
(in the kustomization), Prometheus scraping it, and the Grafana panels querying the names the
API's own registry exposes."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml
from prometheus_client import generate_latest

from worker.api.metrics import ApiMetrics

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def _api_docs() -> dict[str, dict[str, Any]]:
    docs = list(yaml.safe_load_all((DEPLOY / "k8s" / "api.yaml").read_text()))
    return {d["kind"]: d for d in docs}


def test_the_k8s_api_is_a_deployment_and_a_service_probed_on_healthz() -> None:
    docs = _api_docs()
    kust = yaml.safe_load((DEPLOY / "k8s" / "kustomization.yaml").read_text())
    assert "api.yaml" in kust["resources"]
    (container,) = docs["Deployment"]["spec"]["template"]["spec"]["containers"]
    assert container["args"][0] == "api" and "--port" in container["args"]
    port = container["args"][container["args"].index("--port") + 1]
    assert container["ports"] == [{"name": "http", "containerPort": int(port)}]
    for probe in ("readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert {"configMapRef": {"name": "sgr-config"}} in container["envFrom"]
    assert {"secretRef": {"name": "sgr-secrets"}} in container["envFrom"]
    service = docs["Service"]["spec"]
    assert service["selector"] == docs["Deployment"]["spec"]["selector"]["matchLabels"]
    assert service["ports"][0]["targetPort"] == "http"


def test_compose_runs_the_api_with_its_probe_and_prometheus_scrapes_it() -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    api = compose["services"]["api"]
    assert api["command"][:1] == ["api"] and "8080" in api["command"]
    assert api["healthcheck"]["test"] == ["CMD", "sgr", "api", "--check", "--port", "8080"]
    assert api["ports"] == ["127.0.0.1:8080:8080"]  # loopback only; a proxy terminates TLS
    prometheus = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    targets = [t for job in prometheus["scrape_configs"] for s in job["static_configs"]
               for t in s["targets"]]  # fmt: skip
    assert "api:8080" in targets


def test_the_api_panels_query_what_the_api_exposes() -> None:
    metrics = ApiMetrics()
    metrics.requests.labels("/healthz", "GET", "200").inc()
    metrics.latency.labels("/healthz").observe(0.01)
    exposed = set(re.findall(r"^(sgr_api_\w+?)(?:\{| )", generate_latest(metrics.registry).decode(),
                             re.MULTILINE))  # fmt: skip
    dash = json.loads((DEPLOY / "grafana" / "sgr-dashboard.json").read_text())
    exprs = [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]
    queried = {n for e in exprs for n in re.findall(r"\bsgr_api_\w+", e)}
    assert {"sgr_api_requests_total", "sgr_api_request_seconds_bucket"} <= queried
    assert queried <= exposed, sorted(queried - exposed)
