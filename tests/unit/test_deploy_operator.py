"""What an operator relies on in the deploy files: KEDA alone sets the workers' replica count, a
PodDisruptionBudget lets drains take one worker at a time, probes call the exporter's cheap
/healthz (never /metrics), the bridge runs (k8s and compose) under a name of its own, and the
image holds what its ``sgr`` offers or the command says in one line what is missing."""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.unit.test_deploy_fleet import (
    K8S,
    ROOT,
    _compose,
    _compose_env,
    _dockerfile_instructions,
    _k8s,
    _k8s_docs,
    _one,
    _pod_containers,
    defaults,
)

__all__ = ["defaults"]  # the fixture, imported to be used here
WORKLOADS = {"Deployment", "StatefulSet", "DaemonSet"}


def _labels_match(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def test_no_deployment_under_keda_names_a_replica_count() -> None:
    scaled = _k8s("ScaledObject")
    assert scaled
    for obj in scaled:
        target = _one("Deployment", obj["spec"]["scaleTargetRef"]["name"])
        assert "replicas" not in target["spec"], target["metadata"]["name"]


def test_a_disruption_budget_covers_the_workers_without_blocking_drains() -> None:
    (scaled,) = _k8s("ScaledObject")
    worker = _one("Deployment", scaled["spec"]["scaleTargetRef"]["name"])
    pod_labels = worker["spec"]["template"]["metadata"]["labels"]
    budgets = [
        pdb
        for pdb in _k8s("PodDisruptionBudget")
        if _labels_match(pdb["spec"]["selector"]["matchLabels"], pod_labels)
    ]
    assert len(budgets) == 1
    spec = budgets[0]["spec"]
    assert budgets[0]["apiVersion"] == "policy/v1"
    # At KEDA's floor a minAvailable equal to it would refuse every eviction: a drain would hang.
    if "minAvailable" in spec:
        assert int(spec["minAvailable"]) < scaled["spec"]["minReplicaCount"]
    else:
        assert int(spec["maxUnavailable"]) >= 1


def _http_probes() -> list[tuple[str, str, dict[str, Any]]]:
    found = []
    for _, doc in _k8s_docs():
        if doc["kind"] not in WORKLOADS:
            continue
        for c in _pod_containers(doc):
            for kind in ("livenessProbe", "readinessProbe", "startupProbe"):
                probe = c.get(kind, {}).get("httpGet")
                if probe:
                    found.append((f"{doc['metadata']['name']}/{c['name']}", kind, probe))
    return found


def test_no_sgr_probe_calls_the_expensive_metrics_scrape(defaults: Any) -> None:
    for where, kind, probe in _http_probes():
        if where.startswith("sgr-vllm/"):
            continue  # vLLM's own /health
        assert probe["path"] != "/metrics", (where, kind)
    (metrics,) = _one("Deployment", "sgr-metrics")["spec"]["template"]["spec"]["containers"]
    ports = {p["name"]: p["containerPort"] for p in metrics["ports"]}
    for kind in ("readinessProbe", "livenessProbe"):
        probe = metrics[kind]["httpGet"]
        assert probe["path"] == "/healthz", kind
        assert ports[probe["port"]] == defaults.metrics_port, kind
        assert metrics[kind].get("timeoutSeconds", 1) <= 5
    # compose: the exporter's healthcheck fetches /healthz on SGR_METRICS_PORT
    service = _compose()["services"]["metrics"]
    port = _compose_env(service)["SGR_METRICS_PORT"]
    check = " ".join(service["healthcheck"]["test"])
    assert f"127.0.0.1:{port}/healthz" in check and "/metrics" not in check


def test_the_bridge_runs_with_a_stable_name_in_k8s_and_compose() -> None:
    bridge = _one("Deployment", "sgr-bridge")
    spec = bridge["spec"]
    (container,) = spec["template"]["spec"]["containers"]
    assert container["args"] == ["bridge"] and "command" not in container
    # Its processing list is named after the hostname: a successor must have the same one, and
    # two bridges must never run at once (they would share that list).
    assert spec["replicas"] == 1 and spec["strategy"]["type"] == "Recreate"
    assert spec["template"]["spec"]["hostname"]
    refs = {r.get("secretRef", {}).get("name") for r in container["envFrom"]}
    assert "sgr-secrets" in refs  # SGR_REDIS_URL
    assert not _k8s("ScaledObject", "sgr-bridge")
    service = _compose()["services"]["bridge"]
    assert service["command"] == ["bridge"] and service["hostname"]
    assert "replicas" not in (service.get("deploy") or {})
    assert "bridge.yaml" in yaml.safe_load((K8S / "kustomization.yaml").read_text())["resources"]


def test_the_processing_list_is_named_after_the_hostname() -> None:
    """What the fixed hostname above is for (producers/bridge.py)."""
    import socket

    import fakeredis

    from producers.bridge import Bridge

    bridge = Bridge(fakeredis.FakeRedis(), "q", "sgr:events:in", "sgr:events:rejected")
    assert bridge.processing == f"sgr:events:in:processing:{socket.gethostname()}"


# ------------------------------------------------------------------------------ the image


def _pyproject() -> dict[str, Any]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_the_image_copies_every_package_the_wheel_ships() -> None:
    packages = set(_pyproject()["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"])
    assert "testbench" in packages  # `sgr demo`, `report`, `eval`, ... import it
    copied = {
        args.split()[0].rstrip("/")
        for ins, args in _dockerfile_instructions()
        if ins == "COPY" and not args.startswith("--from")
    }
    assert packages | {"sql"} <= copied, sorted(packages - copied)


def test_the_image_installs_the_extras_its_commands_need_or_they_say_so() -> None:
    from worker.cli.app import OPTIONAL, describe_error

    syncs = [a for ins, a in _dockerfile_instructions() if ins == "RUN" and "uv sync" in a]
    extras_per_sync = [set(re.findall(r"--extra (\w+)", a)) for a in syncs]
    assert len(syncs) == 2 and extras_per_sync[0] == extras_per_sync[1]
    installed = extras_per_sync[0]
    assert {"cold", "demo"} <= installed  # setup-data (DuckDB); the demo without Redis
    declared = set(_pyproject()["project"]["optional-dependencies"])
    for package, extra in OPTIONAL.items():
        assert extra in declared, extra
        if extra in installed:
            continue
        # not in the image: a command that needs it says so in one line, naming the extra
        message = describe_error(ModuleNotFoundError(f"No module named {package!r}", name=package))
        assert message and "\n" not in message and f"[{extra}]" in message, message


def test_chaos_and_bench_say_in_one_line_that_redis_server_is_missing(
    monkeypatch: pytest.MonkeyPatch, capsys: Any, tmp_path: Path
) -> None:
    """The image has no redis-server: the commands that start one say so before starting."""
    from worker.cli.app import main

    monkeypatch.setenv("PATH", str(tmp_path))  # nothing on it
    for command in (["chaos"], ["bench", "--quick"]):
        with pytest.raises(SystemExit) as stop:
            main(command)
        err = capsys.readouterr().err
        assert stop.value.code == 1, err
        assert err.count("\n") == 1 and "redis-server" in err and "Traceback" not in err, err
    assert os.listdir(tmp_path) == []
