"""The fleet's commands with real parts: `sgr metrics serve` scraped during a run of real worker
processes (counts equal the hot store's), `sgr health` against RQ's worker keys, and `sgr bridge`
fed by the real `redis-cli`."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families
from rq import Queue

from producers.enqueue import enqueue_events
from producers.synthetic import StreamConfig, event_stream
from stores.sqlite import SqliteHotStore
from testbench.fleet import Fleet
from testbench.redisproc import free_port
from testbench.standin_llm import StandInLLM
from tests.conftest import event, worker_env
from worker.engines.base import request_seed

pytestmark = pytest.mark.integration
SGR = str(Path(sys.executable).with_name("sgr"))


def scrape(url: str) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """Every sample of a scrape: name -> {labels: value}."""
    with urllib.request.urlopen(url, timeout=10) as resp:
        text = resp.read().decode()
    samples: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples.setdefault(s.name, {})[tuple(sorted(s.labels.items()))] = s.value
    return samples


def wait_for(predicate: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def run_sgr(
    env: dict[str, str], *args: str, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run([SGR, *args], env=env, capture_output=True, text=True, timeout=timeout)


def test_metrics_scraped_during_a_run_equal_the_stores(
    redis_client: redis.Redis, redis_url: str, data_dir: Path
) -> None:
    events = list(event_stream(StreamConfig(sessions=40, known_customers=500, seed=14)))
    port = free_port()
    with StandInLLM(latency_s=0.02) as llm:
        env_extra = worker_env(
            data_dir, SGR_ENGINE="vllm", SGR_LLM_URL=llm.url, SGR_METRICS_PORT=str(port)
        )
        env = {**os.environ, **env_extra, "SGR_REDIS_URL": redis_url}
        exporter = subprocess.Popen(
            [SGR, "metrics", "serve"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        fleet = Fleet(2, redis_url, "cart-events", env_extra).start()
        try:
            url = f"http://127.0.0.1:{port}/metrics"
            wait_for(lambda: _answers(url), 30, "the exporter")
            queue = Queue("cart-events", connection=redis_client)
            report = enqueue_events(queue, events)
            enqueue_events(queue, [{"event_id": "bad-1", "type": "nope"}], validate=False)
            hot = SqliteHotStore(data_dir / "hot.sqlite")
            total = len(report.accepted) + 1
            wait_for(lambda: hot.summary()["events"] == total, 120, "every outcome")
            wait_for(lambda: hot.summary()["unpublished"] == 0, 30, "every publication")

            # liveness while the fleet runs: both workers of this host are fresh
            ok = run_sgr(env, "health", "--json")
            assert ok.returncode == 0, ok.stderr
            health = json.loads(ok.stdout)
            assert health["healthy"] and len(health["workers"]) == 2

            time.sleep(6)  # the workers add their LLM figures to Redis every 5 s
            got = scrape(url)
        finally:
            fleet.stop()
            exporter.terminate()
            exporter.wait(10)

        requests = len(llm.requests)
        seeds = [body.get("seed") for body in llm.requests]
    rows = hot.conn.execute(
        "SELECT coalesce(type,'') AS type, outcome, coalesce(reason,'') AS reason, count(*) AS n "
        "FROM processed_events GROUP BY 1, 2, 3"
    ).fetchall()
    expected = {
        (("outcome", r["outcome"]), ("reason", r["reason"]), ("type", r["type"])): r["n"]
        for r in rows
    }
    assert got["sgr_events_total"] == expected
    assert sum(expected.values()) == total
    offers = dict(
        hot.conn.execute("SELECT engine, count(*) FROM offers GROUP BY engine").fetchall()
    )
    assert offers.get("vllm", 0) > 0
    assert got["sgr_offers_total"] == {(("engine", e),): n for e, n in offers.items()}
    assert got["sgr_dead_letters"][()] == 1
    assert got["sgr_queue_depth"][()] == 0
    assert got["sgr_oldest_queued_age_seconds"][()] == 0

    # stage histograms: one observation per stored lap (ask = the "llm" lap), publish per offer
    laps: Counter[str] = Counter()
    for (timings,) in hot.conn.execute(
        "SELECT timings FROM processed_events WHERE outcome != 'dead_letter'"
    ):
        laps.update(json.loads(timings).keys())
    counts = {dict(k)["stage"]: v for k, v in got["sgr_stage_seconds_count"].items()}
    assert counts["context"] == laps["state"] and counts["ask"] == laps["llm"] > 0
    assert counts["check"] == laps["checks"] and counts["history"] == laps["history"]
    assert counts["publish"] == sum(offers.values())

    # LLM figures, from the workers' Redis hash: one request per call the stand-in answered
    assert got["sgr_llm_request_seconds_count"][()] == requests > 0
    tokens = {dict(k)["kind"]: v for k, v in got["sgr_llm_tokens_total"].items()}
    assert tokens == {"prompt": requests, "completion": requests}  # the stand-in says 1 + 1
    # a retry samples with the seed of attempt 2, 3, ... of its event (request_seed)
    retry_seeds = {request_seed(e["event_id"], n) for e in events for n in (2, 3, 4)}
    assert got["sgr_llm_retries_total"][()] == sum(s in retry_seeds for s in seeds)
    problems = hot.conn.execute(
        "SELECT count(*) FROM processed_events WHERE error IS NOT NULL AND outcome != 'dead_letter'"
    ).fetchone()[0]
    assert sum(got.get("sgr_fallbacks_total", {}).values()) == problems
    assert got["sgr_breaker_open"][()] == 0

    # the fleet stopped: RQ removed its worker keys, so the probe fails with one line
    dead = run_sgr(env, "health")
    assert dead.returncode == 1
    assert dead.stderr.startswith("sgr: error: no RQ worker of host") and "Traceback" not in (
        dead.stderr
    )


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return resp.status == 200
    except OSError:
        return False


@pytest.mark.skipif(shutil.which("redis-cli") is None, reason="redis-cli not installed")
def test_bridge_turns_events_pushed_by_redis_cli_into_jobs(
    redis_client: redis.Redis, redis_url: str, data_dir: Path
) -> None:
    good = [
        event(event_id="cli-1", session="cli-s1", user="u000020"),
        event("cart_updated", event_id="cli-2", session="cli-s2", user="u000021"),
    ]
    bad = event(event_id="cli-3", cart={"currency": "EUR", "value": -5, "margin": 0.2})
    for item in [*map(json.dumps, good), json.dumps(bad), "{not json"]:
        subprocess.run(
            ["redis-cli", "-u", redis_url, "RPUSH", "sgr:events:in", item],
            check=True,
            capture_output=True,
            timeout=10,
        )
    env = {**os.environ, **worker_env(data_dir), "SGR_REDIS_URL": redis_url}
    out = run_sgr(env, "bridge", "--once", "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {"read": 4, "enqueued": 2, "rejected": 2, "poison": 0}
    assert redis_client.llen("sgr:events:in") == 0
    rejected = [json.loads(x) for x in redis_client.lrange("sgr:events:rejected", 0, -1)]  # type: ignore[union-attr]
    assert "cart.value" in rejected[0]["error"] and "-5" in rejected[0]["error"]
    assert rejected[1]["error"].startswith("not JSON") and rejected[1]["payload"] == "{not json"

    Fleet(1, redis_url, "cart-events", worker_env(data_dir), burst=True).start().wait(60)
    hot = SqliteHotStore(data_dir / "hot.sqlite")
    first, second = hot.get_outcome("cli-1"), hot.get_outcome("cli-2")
    assert first is not None and first.outcome in ("offer", "no_offer")
    assert second is not None and second.reason == "not_a_trigger"
    assert hot.get_outcome("cli-3") is None  # refused before it became a job
