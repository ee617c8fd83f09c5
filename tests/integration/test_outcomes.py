"""Every event's outcome on the outcome stream, once, on every path: one event per job, batch
jobs, a negotiation turn (``sgr negotiate``'s ``run_turn``), the reaper publishing what a worker
left committed and unpublished (Redis gone between commit and publication, as when the worker
dies there), the bridge's refusals (re-read after a crash), a requeued dead letter, and everything
sent again. Real redis-server, real SQLite and PostgreSQL hot stores."""

from __future__ import annotations

import contextlib
import json
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import redis

from producers.bridge import Bridge
from testbench.redisproc import free_port
from tests.conftest import NOW, event, make_deps
from worker import jobs
from worker.deadletter import DeadLetters
from worker.domain.events import InvalidEvent, parse_event
from worker.keys import Keys
from worker.outbox import Outbox
from worker.publish import Publisher
from worker.reaper import Reaper
from worker.runner import run, run_turn
from worker.runtime import Runtime, install
from worker.settings import Settings

pytestmark = pytest.mark.integration
PRICE = "This is too expensive, can you give me a better price?"


def runtime_for(data_dir: Path, client: redis.Redis, hot_url: str) -> Runtime:
    settings = Settings(data_dir=data_dir, engine="policy", reap_interval_s=0)  # type: ignore[call-arg]
    keys = Keys.from_settings(settings)
    deps = make_deps(data_dir, client, hot_store_url=hot_url)
    letters = DeadLetters(client, keys.dead_letters, keys.store_failures)
    return Runtime(settings, keys, client, deps, letters)


def entries(client: redis.Redis, keys: Keys) -> list[dict[str, str]]:
    return [
        {k.decode(): v.decode() for k, v in fields.items()}
        for _id, fields in client.xrange(keys.outcomes_stream)  # type: ignore[union-attr]
    ]


def cart(n: int, kind: str = "cart_abandoned", **extra: Any) -> dict[str, object]:
    at = NOW - timedelta(minutes=30) + timedelta(seconds=n)
    return event(kind, event_id=f"e{n}", user=f"user_{n}", session=f"s{n}", at=at, **extra)


def test_every_path_publishes_each_outcome_once(
    redis_client: redis.Redis, data_dir: Path, hot_store_url: str
) -> None:
    runtime = install(runtime_for(data_dir, redis_client, hot_store_url))
    keys, hot = runtime.keys, runtime.deps.hot
    try:
        # one event per job: an offer, a no_offer, and a refused event (a dead letter)
        singles = [cart(1), cart(2, "item_added"), cart(3, margin=1.7)]
        for payload in singles:
            with contextlib.suppress(InvalidEvent):
                jobs.handle_event(payload)
        # a batch job, with a bad payload in it
        batch = [cart(4), cart(5, "checkout_started"), {"event_id": "e6", "type": "cart_abandoned"}]
        jobs.handle_batch(batch)
        # a negotiation turn
        message = event(
            "customer_message", event_id="m1", user="user_7", session="s7",
            at=NOW - timedelta(minutes=1), message=PRICE,
            cart={"currency": "EUR", "value": 120.0, "margin": 0.4},
        )  # fmt: skip
        run_turn(parse_event(message), runtime.deps)
        # a worker that committed and could not publish (Redis gone; or it died right there)
        dead = redis.Redis(port=free_port(), socket_connect_timeout=0.2)
        lost = replace(runtime.deps, outbox=Outbox(hot, Publisher(dead, keys), runtime.deps.clock))
        left = [parse_event(cart(8)), parse_event(cart(9, "item_removed"))]
        with pytest.raises(redis.ConnectionError):
            run(left, lost)
        assert {n.event_id for n in hot.unpublished_outcomes()} == {"e8", "e9"}
        assert {"e8", "e9"}.isdisjoint(e["event_id"] for e in entries(redis_client, keys))
        Reaper(runtime).reap()  # its outbox flush publishes what the worker left
        assert hot.unpublished_outcomes() == []
        # a non-Python producer's events through the bridge: one accepted, three refused
        raw = [
            json.dumps(cart(10, "item_added")),
            json.dumps(cart(11, value=-5.0)),
            "{not json",
            json.dumps({"type": "cart_abandoned"}),  # no event id: filed under its bytes
        ]
        for item in raw:
            redis_client.rpush(keys.events_in, item)
        outcomes = Publisher(redis_client, keys)
        bridge = Bridge(
            redis_client, keys.queue, keys.events_in, keys.events_rejected,
            dead_letters=keys.dead_letters, alerts=keys.queue_alerts, outcomes=outcomes,
        )  # fmt: skip
        assert bridge.run(once=True)["rejected"] == 3
        # the bridge died before it deleted its processing list: the round is read again
        for item in raw[1:]:
            redis_client.rpush(bridge.processing, item)
        assert bridge.run(once=True)["rejected"] == 6  # the rejected list has them twice...
        # everything sent again (a producer's retry): each event takes effect once
        for payload in singles:
            with contextlib.suppress(InvalidEvent):
                jobs.handle_event(payload)
        jobs.handle_batch([*batch, message, cart(8), cart(9, "item_removed")])
        runtime.deps.outbox.flush()
        Reaper(runtime).reap()

        told = entries(redis_client, keys)
        recorded = hot.query("SELECT event_id, outcome, reason, offer_id FROM processed_events")
        by_event = {e["event_id"]: e for e in told if e["outcome"] != "rejected"}
        # ...and the outcome stream has each refusal once, each recorded outcome once
        assert len(told) == len({e["outcome_id"] for e in told}) == len(recorded) + 3
        assert sorted(by_event) == sorted(r["event_id"] for r in recorded)
        for row in recorded:
            entry = by_event[row["event_id"]]
            assert entry["type"] == "outcome" and entry["outcome"] == row["outcome"]
            assert entry["reason"] == (row["reason"] or "")
            assert entry["offer_id"] == (row["offer_id"] or "")
        assert by_event["e1"]["outcome"] == "offer" and by_event["e1"]["offer_id"]
        assert by_event["e2"]["reason"] == "not_a_trigger"
        assert by_event["m1"]["event_type"] == "customer_message"
        for refused in ("e3", "e6"):  # the contract's error, naming the field
            assert by_event[refused]["outcome"] == "dead_letter"
            assert by_event[refused]["error_kind"] == "invalid_event"
        assert "cart.margin" in by_event["e3"]["error"]
        assert {by_event[e]["outcome"] for e in ("e8", "e9")} <= {"offer", "no_offer"}
        rejected = [e for e in told if e["outcome"] == "rejected"]
        assert sorted(e["error_kind"] for e in rejected) == ["invalid_event", "invalid_event", "not_json"]  # fmt: skip
        assert {e["event_id"] for e in rejected} >= {"e11"}
        assert "cart.value" in next(e["error"] for e in rejected if e["event_id"] == "e11")
        assert all(e["event_id"].startswith("raw:") for e in rejected if e["event_id"] != "e11")
    finally:
        hot.close()


def test_a_requeued_dead_letter_gets_an_outcome_of_its_own(
    redis_client: redis.Redis, data_dir: Path
) -> None:
    runtime = install(runtime_for(data_dir, redis_client, ""))
    try:
        with pytest.raises(InvalidEvent):
            jobs.handle_event(cart(1, margin=1.7))
        assert runtime.deps.hot.forget_dead_letter("e1")  # `sgr dead-letters requeue`
        runtime.deps.clock.advance(seconds=1)  # type: ignore[attr-defined]
        jobs.handle_event(cart(1))
        told = entries(redis_client, runtime.keys)
        assert [(e["event_id"], e["outcome"]) for e in told] == [
            ("e1", "dead_letter"),
            ("e1", "offer"),
        ]
        assert told[0]["outcome_id"] != told[1]["outcome_id"]  # a consumer handles both
    finally:
        runtime.deps.hot.close()
