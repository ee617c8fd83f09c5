"""Batch jobs end to end: a real redis-server, stock `rq worker` subprocesses, real SQLite and
DuckDB files, the LLM STAND-IN at the edge. Every event its one outcome, bad payloads inside a
batch dead-lettered alone, offers published once, and a batch's carts asking the LLM at once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis
from rq import Queue

from producers.enqueue import enqueue_events
from producers.synthetic import StreamConfig, event_stream
from stores.hot import open_hot_store
from testbench.fleet import Fleet
from testbench.standin_llm import StandInLLM
from tests.conftest import NOW, event, make_runtime, worker_env
from worker.deadletter import DeadLetters

pytestmark = pytest.mark.integration
TIMINGS = "SELECT timings FROM processed_events"


def test_batch_jobs_give_every_event_its_outcome(
    redis_client: redis.Redis, redis_url: str, data_dir: Path
) -> None:
    events = list(event_stream(StreamConfig(sessions=60, known_customers=500, seed=7)))
    bad = [event(event_id="bad-1", cart={"currency": "EUR", "value": -1, "margin": 0.2}), "junk"]
    queue = Queue("cart-events", connection=redis_client)
    good = enqueue_events(queue, events, batch_size=25)
    mixed = enqueue_events(
        queue, [*bad, event(event_id="ok-1", session="s-ok")], batch_size=3, validate=False
    )
    assert len(mixed.job_ids) == 1
    Fleet(2, redis_url, "cart-events", worker_env(data_dir), burst=True).start().wait(120)

    hot = open_hot_store("", data_dir / "hot.sqlite")
    summary = hot.summary()
    assert summary["events"] == len(good.accepted) + 3  # one outcome per event
    assert summary["dead_letter"] == 2  # the two bad ones; their batch-mate got its outcome
    assert (hot.get_outcome("ok-1") or pytest.fail("no outcome")).outcome == "offer"
    assert summary["over_cap"] == 0 and summary["unpublished"] == 0
    assert redis_client.xlen("sgr:offers") == summary["offers"] > 0
    assert len(Queue("cart-events", connection=redis_client).failed_job_registry) == 0


def test_a_batch_asks_the_llm_for_its_carts_at_once(
    redis_client: redis.Redis, redis_url: str, data_dir: Path
) -> None:
    carts = [event(event_id=f"c{i}", session=f"s{i}", user=f"u{i:06d}", at=NOW) for i in range(16)]
    queue = Queue("cart-events", connection=redis_client)
    report = enqueue_events(queue, carts, batch_size=16)
    with StandInLLM(latency_s=0.5) as llm:
        # 16 connections at once: http.server's listen backlog of 5 would drop some (SYN retries)
        llm.server.socket.listen(64)
        env = worker_env(
            data_dir,
            SGR_ENGINE="vllm",
            SGR_LLM_URL=llm.url,
            SGR_LLM_MODEL=llm.model,
            SGR_LLM_CONCURRENCY="8",
        )
        Fleet(1, redis_url, "cart-events", env, burst=True).start().wait(120)
        assert len(llm.requests) == 16
    job = queue.fetch_job(report.job_ids[0])
    assert job is not None
    assert job.return_value() == {"events": 16, "outcomes": {"offer": 16}, "failed": 0}
    hot = open_hot_store("", data_dir / "hot.sqlite")
    assert hot.offers_by_engine() == {f"vllm:{llm.model}": 16}
    # each cart's wait for its answer (from its own decision on): one at a time, the last one
    # would wait 16 x 0.5 s = 8 s; 8 at a time, about 2 x 0.5 s
    waits = [json.loads(r["timings"])["llm"] for r in hot.query(TIMINGS)]  # type: ignore[attr-defined]
    assert len(waits) == 16 and max(waits) < 4000, waits


def test_a_batch_out_of_time_on_every_attempt_leaves_a_requeueable_dead_letter_per_event(
    redis_client: redis.Redis, redis_url: str, data_dir: Path
) -> None:
    """20 carts, one LLM answer at a time, 1 s each, in a job of 6 s: every attempt is stopped by
    the job timeout (never caught as one event's failure: each attempt ends near 6 s). Out of
    attempts, the reaper leaves one dead letter per event, each with its own whole payload, and
    `sgr dead-letters requeue` puts them back as events that then get their offers."""
    from worker.reaper import Reaper

    carts = [event(event_id=f"t{i}", session=f"s{i}", user=f"u{i:06d}", at=NOW) for i in range(20)]
    queue = Queue("cart-events", connection=redis_client)
    enqueue_events(queue, carts, batch_size=20, max_attempts=2, job_timeout=6)
    env = worker_env(
        data_dir,
        SGR_ENGINE="vllm",
        SGR_LLM_CONCURRENCY="1",
        SGR_LLM_TIMEOUT_S="2",
        SGR_LLM_RETRIES="0",
        SGR_JOB_TIMEOUT_S="6",
        SGR_MAX_ATTEMPTS="2",
    )
    with StandInLLM(latency_s=1.0) as llm:
        env.update(SGR_LLM_URL=llm.url, SGR_LLM_MODEL=llm.model)
        started = time.monotonic()
        Fleet(1, redis_url, "cart-events", env, burst=True).start().wait(120)
        took = time.monotonic() - started
    assert len(queue.failed_job_registry) == 1
    assert took < 2 * 6 + 15, took  # two attempts, each cut at its 6 s timeout
    report = Reaper(make_runtime(data_dir, redis_client)).reap()
    letters = DeadLetters(redis_client, "sgr:dead-letters").list(100)
    assert sorted(lt.event_id for lt in letters) == sorted(c["event_id"] for c in carts)
    assert all(lt.payload == c for lt, c in zip(sorted(letters, key=lambda x: x.event_id), sorted(carts, key=lambda c: str(c["event_id"])), strict=True))  # fmt: skip
    assert report.as_dict()["swept"] == 20
    hot = open_hot_store("", data_dir / "hot.sqlite")
    assert {hot.get_outcome(str(c["event_id"])).outcome for c in carts} == {"dead_letter"}  # type: ignore[union-attr]

    sgr_bin = Path(sys.executable).with_name("sgr")
    done = subprocess.run(
        [str(sgr_bin), "dead-letters", "requeue"],
        env={**os.environ, **worker_env(data_dir), "SGR_REDIS_URL": redis_url},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "requeued 20 event(s)" in done.stdout, done.stdout + done.stderr
    Fleet(1, redis_url, "cart-events", worker_env(data_dir), burst=True).start().wait(120)
    assert {hot.get_outcome(str(c["event_id"])).outcome for c in carts} == {"offer"}  # type: ignore[union-attr]
