"""LLM faults on the real worker path: the stock `rq worker` as a subprocess on a real
redis-server and real SQLite/DuckDB files, the STAND-IN LLM server (testbench/standin_llm.py, a
test double at the edge) misbehaving on the wire. A server that trickles its answer one byte at a
time, or pushes back with a Retry-After past the deadline, costs an event at most about
SGR_LLM_TIMEOUT_S: the event still ends with an offer, made by the fallback (the rules engine),
published on the stream, and never a dead letter."""

from __future__ import annotations

import json
import time
from pathlib import Path

import fakeredis
import pytest
import redis
from rq import Queue

from producers.enqueue import enqueue_events
from stores.sqlite import SqliteHotStore
from testbench.fleet import Fleet
from testbench.standin_llm import StandInLLM
from tests.conftest import event, worker_env
from worker.domain.events import parse_event
from worker.runner import process
from worker.runtime import build_runtime
from worker.settings import Settings

pytestmark = pytest.mark.integration
TIMEOUT_S = 2.0


def offers_on_the_stream(client: redis.Redis) -> list[dict[str, str]]:
    return [
        {k.decode(): v.decode() for k, v in fields.items()}
        for _id, fields in client.xrange("sgr:offers")  # type: ignore[union-attr]
    ]


@pytest.mark.parametrize(
    ("fault", "problem"),
    [("trickle", "engine_timeout"), ("rate_limited", "engine_rate_limited")],
)
def test_a_misbehaving_llm_costs_a_worker_one_deadline_and_the_fallback_offers(
    redis_client: redis.Redis, redis_url: str, data_dir: Path, fault: str, problem: str
) -> None:
    # trickle: a byte every 0.2 s (a per-read timeout would never fire); rate_limited: a
    # Retry-After of a minute, past the deadline, so not waited
    with StandInLLM(fault=fault, trickle_s=0.2, retry_after="60") as llm:
        env = worker_env(
            data_dir,
            SGR_ENGINE="vllm",
            SGR_LLM_URL=llm.url,
            SGR_LLM_TIMEOUT_S=str(TIMEOUT_S),
            SGR_LLM_RETRIES="2",
            SGR_LLM_RETRY_AFTER_MAX_S="60",
        )
        queue = Queue("cart-events", connection=redis_client)
        enqueue_events(queue, [event(event_id="slow1", session="s-slow1", value=150.0)])
        Fleet(1, redis_url, "cart-events", env, burst=True).start().wait(120)
        asked = len(llm.requests)
    hot = SqliteHotStore(data_dir / "hot.sqlite")
    outcome = hot.get_outcome("slow1")
    assert outcome is not None and outcome.outcome == "offer", outcome  # not a dead letter
    offer = hot.get_offer(outcome.offer_id or "")
    assert offer is not None and offer.engine == "policy"
    assert (outcome.error or "").startswith(problem)  # the fallback's reason, recorded
    assert asked == 1  # nothing left in the deadline to retry in
    row = hot.conn.execute(
        "SELECT timings FROM processed_events WHERE event_id = 'slow1'"
    ).fetchone()
    llm_s = json.loads(row["timings"])["llm"] / 1000
    if fault == "trickle":
        assert TIMEOUT_S <= llm_s < TIMEOUT_S + 1.0  # cut at the deadline
    else:
        assert llm_s < 1.0  # a Retry-After past the deadline is not waited
    stored = offer
    (offer,) = offers_on_the_stream(redis_client)
    assert offer["event_id"] == "slow1" and offer["engine"] == "policy"
    assert "cap_pct" not in offer  # the ceiling stays in the hot store (SGR_PUBLISH_CAP)
    # the rules engine's own choice, below the cap (SGR_POLICY_SHARE_OF_CAP), not the cap
    assert float(offer["discount_pct"]) == stored.discount_pct < stored.cap_pct
    assert redis_client.llen("sgr:dead-letters") == 0


def test_the_runtime_path_with_a_trickling_llm_ends_within_the_deadline(data_dir: Path) -> None:
    with StandInLLM(fault="trickle", trickle_s=0.1) as llm:
        settings = Settings(
            data_dir=data_dir,
            engine="vllm",
            llm_url=llm.url,
            llm_timeout_s=TIMEOUT_S,
            reap_interval_s=0,
        )
        runtime = build_runtime(settings, fakeredis.FakeRedis())
        started = time.perf_counter()
        outcome = process(parse_event(event(event_id="slow2", session="s-slow2")), runtime.deps)
        took = time.perf_counter() - started
        # the stand-in has recovered: the next event gets the LLM's own offer
        with llm.lock:
            llm.fault = "none"
        again = process(
            parse_event(event(event_id="fast3", session="s-fast3", user="u000003")), runtime.deps
        )
    assert outcome.outcome == "offer" and outcome.engine == "policy"
    assert TIMEOUT_S <= took < TIMEOUT_S + 1.0
    assert again.outcome == "offer" and again.engine == "vllm"
