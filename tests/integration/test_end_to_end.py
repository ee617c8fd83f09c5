"""End to end with real parts: a real redis-server, the stock `rq worker` as subprocesses, real
SQLite and DuckDB files; offers read back from the result stream. Each test runs on both hot
stores (``hot_store_url``: the SQLite file in the data folder, and a real PostgreSQL)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import redis
from rq import Queue

from producers.enqueue import enqueue_events
from producers.synthetic import StreamConfig, event_stream
from stores.hot import open_hot_store
from testbench.fleet import Fleet, rq_worker_command
from testbench.standin_llm import StandInLLM
from tests.conftest import event, worker_env

pytestmark = pytest.mark.integration
SGR = str(Path(sys.executable).with_name("sgr"))


def stream_offers(client: redis.Redis, stream: str = "sgr:offers") -> list[dict[str, str]]:
    """The offer entries of the result stream (a negotiation's replies are entries of their own)."""
    entries = [
        {k.decode(): v.decode() for k, v in fields.items()}
        for _id, fields in client.xrange(stream)  # type: ignore[union-attr]
    ]
    return [e for e in entries if e.get("type", "offer") == "offer"]


def test_workers_turn_events_into_offers(
    redis_client: redis.Redis, redis_url: str, data_dir: Path, hot_store_url: str
) -> None:
    events = list(event_stream(StreamConfig(sessions=60, known_customers=500, seed=5)))
    bad = [
        event(event_id="bad-1", cart={"currency": "EUR", "value": -1, "margin": 0.2}),
        {"event_id": "bad-2", "type": "nope"},
        "not even an object",
    ]
    queue = Queue("cart-events", connection=redis_client)
    good = enqueue_events(queue, events)
    enqueue_events(queue, bad, validate=False, max_attempts=3)
    env = worker_env(data_dir, SGR_HOT_STORE_URL=hot_store_url)
    Fleet(2, redis_url, "cart-events", env, burst=True).start().wait(120)

    hot = open_hot_store(hot_store_url, data_dir / "hot.sqlite")
    summary = hot.summary()
    assert summary["events"] == len(good.accepted) + len(bad)  # one outcome per event
    assert summary["dead_letter"] == 3
    assert summary["over_cap"] == 0 and summary["unpublished"] == 0
    offers = [o for o in stream_offers(redis_client) if o.get("type", "offer") == "offer"]
    assert len(offers) == summary["offers"] > 0  # the stream also carries negotiation replies
    for offer in offers:
        assert "cap_pct" not in offer  # off the stream unless SGR_PUBLISH_CAP=1
        stored = hot.get_offer(offer["offer_id"])
        assert stored is not None and 0 < float(offer["discount_pct"]) <= stored.cap_pct
    recorded = hot.get_outcome("bad-1")
    assert recorded is not None and "cart.value" in (recorded.error or "")
    letters = [json.loads(x) for x in redis_client.lrange("sgr:dead-letters", 0, -1)]  # type: ignore[union-attr]
    assert {x["event_id"] for x in letters} >= {"bad-1", "bad-2"}
    assert any("type:" in x["error"] and "'nope'" in x["error"] for x in letters)


def test_sgr_produce_then_plain_rq_worker_burst(  # the forking worker: about 1 s a job here
    redis_client: redis.Redis, redis_url: str, data_dir: Path, tmp_path: Path, hot_store_url: str
) -> None:
    env = {
        **os.environ,
        **worker_env(data_dir, SGR_HOT_STORE_URL=hot_store_url),
        "SGR_REDIS_URL": redis_url,
    }
    lines = tmp_path / "events.jsonl"
    lines.write_text(
        "\n".join(
            json.dumps(e)
            for e in [
                event(event_id="p1", session="sp1", user="u000010", value=90),
                event("cart_updated", event_id="p0", session="sp1", user="u000010"),
                event(event_id="p2", cart={"currency": "EUR", "value": 50, "margin": 7}),
            ]
        )
    )
    out = subprocess.run(
        [SGR, "produce", "--file", str(lines), "--json"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 1  # something was rejected: a non-zero exit says so
    assert '"rejected": 1' in out.stdout and '"enqueued": 2' in out.stdout
    assert "line 3" in out.stderr
    assert "cart.margin" in out.stderr and "7" in out.stderr
    subprocess.run(
        rq_worker_command(redis_url, "cart-events", burst=True, worker_class="rq.worker.Worker"),
        env=env,
        check=True,
        timeout=180,
        capture_output=True,
    )
    hot = open_hot_store(hot_store_url, data_dir / "hot.sqlite")
    outcome = hot.get_outcome("p1")
    assert outcome is not None and outcome.outcome == "offer"
    assert any(o["event_id"] == "p1" for o in stream_offers(redis_client))
    assert Queue("cart-events", connection=redis_client).count == 0


def test_llm_edge_end_to_end(
    redis_client: redis.Redis, redis_url: str, data_dir: Path, hot_store_url: str
) -> None:
    with StandInLLM(latency_s=0.01) as llm:
        env = worker_env(
            data_dir, SGR_ENGINE="vllm", SGR_LLM_URL=llm.url, SGR_HOT_STORE_URL=hot_store_url
        )
        queue = Queue("cart-events", connection=redis_client)
        enqueue_events(
            queue, [event(event_id=f"l{i}", session=f"sl{i}", user=f"u{i:06d}") for i in range(10)]
        )
        Fleet(1, redis_url, "cart-events", env, burst=True).start().wait(120)
        assert len(llm.requests) == 10
    offers = stream_offers(redis_client)
    assert len(offers) == 10
    assert {o["engine"] for o in offers} == {"vllm"}
    assert {o["model"] for o in offers} == {"stand-in"}
    hot = open_hot_store(hot_store_url, data_dir / "hot.sqlite")
    assert hot.summary()["offers"] == 10  # committed where the settings say
    hot.close()
