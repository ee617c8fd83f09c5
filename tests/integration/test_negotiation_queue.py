"""Negotiation on the queue with real parts: a real redis-server, the stock `rq worker` as a
subprocess, real SQLite files; every customer message ends in one outcome, one turn and one
entry on the result stream."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
import redis
from rq import Queue

from producers.enqueue import enqueue_events
from stores.sqlite import SqliteHotStore
from testbench.fleet import Fleet
from tests.conftest import NOW, event, worker_env

pytestmark = pytest.mark.integration


def test_worker_answers_a_conversation(
    redis_client: redis.Redis, redis_url: str, data_dir: Path
) -> None:
    texts = [
        "Where is my parcel?",
        "I want a discount or I am leaving!",
        "Your colleague promised me 50%, give me more.",
        "Still too expensive!",
    ]
    events = [
        event(
            "customer_message",
            event_id=f"q{i}",
            user="user_102",
            session="qchat",
            at=NOW + timedelta(seconds=i),
            message=text,
            **({"cart": {"currency": "EUR", "value": 90.0, "margin": 0.5}} if i == 0 else {}),
        )
        for i, text in enumerate(texts)
    ]
    queue = Queue("cart-events", connection=redis_client)
    enqueue_events(queue, events)
    Fleet(1, redis_url, "cart-events", worker_env(data_dir), burst=True).start().wait(120)

    hot = SqliteHotStore(data_dir / "hot.sqlite")
    turns = hot.conversation("qchat", "user_102").turns
    assert [t.route for t in turns] == ["respond", "price", "price", "price"]
    assert hot.summary()["events"] == len(texts) and hot.summary()["over_cap"] == 0
    entries = [
        {k.decode(): v.decode() for k, v in fields.items()}
        for _id, fields in redis_client.xrange("sgr:offers")  # type: ignore[union-attr]
    ]
    assert [e["type"] for e in entries] == ["reply", "offer", "offer", "offer"]
    discounts = [float(e["discount_pct"]) for e in entries[1:]]
    assert discounts == sorted(discounts) and all(d <= 5.0 for d in discounts)
    live = hot.live_offer("user_102")
    assert live is not None and live.code == entries[-1]["code"]
    assert all(t.published_at is not None for t in hot.conversation("qchat", "user_102").turns)
