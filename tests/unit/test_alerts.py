"""The alert rules (deploy/prometheus/alerts.yml): promtool checks them and runs their unit tests
(alerts.test.yml), every alert has a test in which it fires, and every ``sgr_`` metric they
query is one the real exporter serves (but the two it does not export yet, named here)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import fakeredis
import pytest
import yaml

PROMETHEUS = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"
RULES = PROMETHEUS / "alerts.yml"
RULE_TESTS = PROMETHEUS / "alerts.test.yml"
# Metrics the rules need that worker/metrics.py does not export yet (alerts.yml says so at each).
NOT_EXPORTED_YET: set[str] = set()  # sgr_workers, sgr_store_failures_total: exported now
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None,
    reason="promtool is not installed (`apt-get install prometheus`; .ci/run installs it)",
)


def _rules() -> dict[str, dict[str, object]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return {rule["alert"]: rule for group in groups for rule in group["rules"]}


@needs_promtool
def test_promtool_checks_the_rules() -> None:
    assert PROMTOOL
    out = subprocess.run(
        [PROMTOOL, "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"SUCCESS: {len(_rules())} rules found" in out.stdout


@needs_promtool
def test_promtool_test_rules_passes() -> None:
    assert PROMTOOL
    out = subprocess.run(
        [PROMTOOL, "test", "rules", str(RULE_TESTS)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=PROMETHEUS,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS" in out.stdout


def test_every_alert_has_a_test_in_which_it_fires() -> None:
    spec = yaml.safe_load(RULE_TESTS.read_text())
    assert spec["rule_files"] == [RULES.name]
    fired = {
        check["alertname"]
        for test in spec["tests"]
        for check in test["alert_rule_test"]
        if check["exp_alerts"]
    }
    assert fired == set(_rules()), set(_rules()) ^ fired


def test_the_issue_s_alerts_are_there() -> None:
    rules = _rules()
    wanted = {
        "oldest queued event age": "sgr_oldest_queued_age_seconds",
        "dead-letter rate": "sgr_dead_letters",
        "no workers": "sgr_queue_depth",
        "exporter down": 'up{job="sgr"}',
        "breaker open": "sgr_breaker_open",
        "store failures": "sgr_store_failures_total",
        "redis memory": "redis_memory_max_bytes",
    }
    exprs = " ".join(str(rule["expr"]) for rule in rules.values())
    for what, metric in wanted.items():
        assert metric in exprs, what
    for name, rule in rules.items():
        assert rule["labels"]["severity"] in {"info", "warning", "critical"}, name  # type: ignore[index]
        assert {"summary", "description"} <= set(rule["annotations"]), name  # type: ignore[arg-type]


def test_the_rules_query_only_metrics_the_exporter_serves(tmp_path: Path) -> None:
    from prometheus_client import generate_latest

    from stores.hot import open_hot_store
    from worker.metrics import registry_for
    from worker.settings import Settings

    settings = Settings(data_dir=tmp_path)
    open_hot_store("", settings.hot_db).close()  # the exporter reads a store, never makes one
    scrape = generate_latest(registry_for(settings, fakeredis.FakeRedis())).decode()
    served = set(re.findall(r"^# TYPE (sgr_\w+) (\w+)", scrape, re.M))
    names = {name for name, _ in served}
    names |= {f"{name}_total" for name, kind in served if kind == "counter"}
    names |= {f"{name}_{s}" for name, kind in served if kind == "histogram" for s in ("bucket",)}
    queried = set(re.findall(r"\bsgr_\w+", " ".join(str(r["expr"]) for r in _rules().values())))
    assert queried - NOT_EXPORTED_YET <= names, sorted(queried - NOT_EXPORTED_YET - names)
    assert queried >= NOT_EXPORTED_YET  # listed here only while a rule needs them


def test_prometheus_loads_the_rules_and_compose_mounts_them() -> None:
    prom = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    assert "/etc/prometheus/alerts.yml" in prom["rule_files"]
    jobs = {job["job_name"] for job in prom["scrape_configs"]}
    assert {"sgr", "redis"} <= jobs  # the jobs the rules name (up{job=...})
    compose = yaml.safe_load((PROMETHEUS.parent / "compose.yaml").read_text())
    mounts = compose["services"]["prometheus"]["volumes"]
    assert "./prometheus/alerts.yml:/etc/prometheus/alerts.yml:ro" in mounts
