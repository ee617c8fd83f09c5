"""Cart recovery on the shop's clock (docs/recovery.md), end to end: a real redis-server, a
`rq worker -w worker.safejob.SafeWorker` subprocess, both hot stores. With
SGR_OFFER_DELAY_MINUTES=0.25 an abandonment's decision waits 15 s: an order 5 s after it ends it
`no_offer: order_completed` and nothing is published; an abandonment alone is published after
its due time and not before; an order that uses the offer's code attributes it `redeemed`."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
from rq import Queue

from producers.enqueue import enqueue_events
from stores.hot import open_hot_store
from testbench.fleet import Fleet
from testbench.redisproc import RedisServer
from tests.conftest import event, worker_env

pytestmark = pytest.mark.integration
DELAY_S = 15.0


def entries(client: redis.Redis) -> list[dict[str, str]]:
    return [
        {k.decode(): v.decode() for k, v in fields.items()}
        for _id, fields in client.xrange("sgr:offers")  # type: ignore[union-attr]
    ]


def wait_for(check: Callable[[], Any], limit_s: float, what: str) -> Any:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_decisions_wait_for_their_time_and_read_the_newest_state(
    redis_client: redis.Redis, redis_url: str, data_dir: Path, hot_store_url: str
) -> None:
    queue = Queue("cart-events", connection=redis_client)
    env = worker_env(data_dir, SGR_HOT_STORE_URL=hot_store_url, SGR_OFFER_DELAY_MINUTES="0.25")
    hot = open_hot_store(hot_store_url, data_dir / "hot.sqlite")
    with Fleet(1, redis_url, "cart-events", env):
        start = datetime.now(UTC)
        ordered = event(event_id="ab-ordered", user="u000001", session="s-ordered", at=start)
        alone = event(event_id="ab-alone", user="u000002", session="s-alone", at=start)
        enqueue_events(queue, [ordered, alone])
        scheduled = wait_for(lambda: hot.get_outcome("ab-alone"), 10, "the schedule")
        assert scheduled.outcome == "scheduled"
        assert scheduled.due_at == start + timedelta(seconds=DELAY_S)

        time.sleep(max(0.0, 5 - (datetime.now(UTC) - start).total_seconds()))
        order = event("order_completed", event_id="order-1", user="u000001", session="s-ordered",
                      at=datetime.now(UTC))  # fmt: skip
        enqueue_events(queue, [order])
        wait_for(lambda: hot.get_outcome("order-1"), 10, "the order's outcome")
        # before the due time: nothing decided, nothing on the stream
        assert datetime.now(UTC) < start + timedelta(seconds=DELAY_S - 1)
        assert hot.get_outcome("ab-ordered").outcome == "scheduled"  # type: ignore[union-attr]
        assert hot.get_outcome("ab-alone").outcome == "scheduled"  # type: ignore[union-attr]
        assert [e for e in entries(redis_client) if e["type"] == "offer"] == []
        assert hot.summary()["scheduled"] == 2

        def decided(event_id: str) -> Any:
            found = hot.get_outcome(event_id)
            return found if found is not None and found.outcome != "scheduled" else None

        made = wait_for(lambda: decided("ab-alone"), 60, "the due decision")
        refused = wait_for(lambda: decided("ab-ordered"), 60, "the other due decision")
        assert (refused.outcome, refused.reason) == ("no_offer", "order_completed")
        assert made.outcome == "offer" and made.offer_id
        for found in (made, refused):
            assert found.decided_at is not None and found.decided_at >= found.due_at
        offers = wait_for(
            lambda: [e for e in entries(redis_client) if e["type"] == "offer"], 10, "the offer"
        )
        assert [o["event_id"] for o in offers] == ["ab-alone"]  # the ordered cart got none
        offer = hot.get_offer(made.offer_id)
        assert offer is not None and offer.created_at >= start + timedelta(seconds=DELAY_S)

        # the customer orders with the code: redeemed, not voided, attributed "redeemed"
        paid = event(
            "order_completed", event_id="order-2", user="u000002", session="s-alone",
            at=datetime.now(UTC),
            order={"order_id": "A-1002", "value": 114.0, "currency": "EUR", "code": offer.code},
        )  # fmt: skip
        enqueue_events(queue, [paid])
        wait_for(lambda: hot.get_outcome("order-2"), 20, "the paying order")
    rows = {r["offer_id"]: r for r in hot.attribution(72, datetime.now(UTC))}
    got = rows[offer.offer_id]
    assert got["attribution"] == "redeemed"
    assert got["order_id"] == "A-1002" and got["order_value"] == 114.0
    state = hot.code_state(offer.code)
    assert state is not None and state.redeemed_at is not None and state.voided_at is None
    assert [e for e in entries(redis_client) if e["type"] == "void"] == []
    assert hot.summary()["scheduled"] == 0
    hot.close()


def test_a_scheduled_decision_survives_worker_death_and_a_redis_that_lost_everything(
    data_dir: Path, hot_store_url: str
) -> None:
    """The worker that scheduled it is SIGKILLed and redis-server restarts empty (no AOF): the
    due set, the queue and RQ's registries are gone. A new worker's reaper rebuilds the due set
    from the hot store (a new Redis run_id) and the decision is taken once, after its due time."""
    with RedisServer() as server:
        client = redis.Redis.from_url(server.url)
        env = worker_env(
            data_dir, SGR_HOT_STORE_URL=hot_store_url, SGR_OFFER_DELAY_MINUTES="0.1",
            SGR_REAP_INTERVAL_S="0.5",
        )  # fmt: skip
        hot = open_hot_store(hot_store_url, data_dir / "hot.sqlite")
        start = datetime.now(UTC)
        first = Fleet(1, server.url, "cart-events", env).start()
        try:
            enqueue_events(
                Queue("cart-events", connection=client), [event(event_id="ab-x", at=start)]
            )
            assert (
                wait_for(lambda: hot.get_outcome("ab-x"), 15, "the schedule").outcome == "scheduled"
            )
            assert client.zcard("sgr:due-decisions") == 1
        finally:
            first.stop(signal.SIGKILL)
        server.kill()
        server.start()  # appendonly no: it comes back empty
        assert client.zcard("sgr:due-decisions") == 0
        with Fleet(1, server.url, "cart-events", env):
            made = wait_for(
                lambda: (o := hot.get_outcome("ab-x")) is not None and o.outcome != "scheduled" and o,
                45, "the decision after the restart",
            )  # fmt: skip
            assert made.outcome == "offer"
            assert made.decided_at >= start + timedelta(seconds=6)
            offers = wait_for(
                lambda: [e for e in entries(client) if e["type"] == "offer"], 10, "the offer"
            )
        assert [o["event_id"] for o in offers] == ["ab-x"]
        assert hot.summary()["offers"] == 1
        client.close()
        hot.close()
