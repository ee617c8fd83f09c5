"""The reaper re-publishes negotiation replies Redis lost (a crash between AOF fsyncs), as it
does offers: real redis-server, real SQLite."""

from __future__ import annotations

from pathlib import Path

import redis

from tests.conftest import event, make_runtime
from worker.domain.events import parse_event
from worker.reaper import Reaper
from worker.runner import run_turn


def stream(client: redis.Redis) -> list[dict[str, str]]:
    return [
        {k.decode(): v.decode() for k, v in fields.items()}
        for _id, fields in client.xrange("sgr:offers")  # type: ignore[union-attr]
    ]


def test_lost_replies_and_offers_are_published_again_once(
    redis_client: redis.Redis, data_dir: Path
) -> None:
    runtime = make_runtime(data_dir, redis_client)
    deps = runtime.deps
    for n, text in enumerate(["Where is my parcel?", "I want a discount or I am leaving!"], 1):
        deps.clock.advance(seconds=5)  # type: ignore[attr-defined]
        payload = event(
            "customer_message",
            event_id=f"m{n}",
            user="user_102",
            session="chat1",
            at=deps.clock(),
            message=text,
            cart={"currency": "EUR", "value": 120.0, "margin": 0.4},
        )
        run_turn(parse_event(payload), deps)
    before = stream(redis_client)
    assert [e["type"] for e in before] == ["reply", "offer"]

    redis_client.flushdb()  # Redis restarted without its last writes: stream and markers gone
    reaper = Reaper(runtime)
    report = reaper.reap()
    assert report.republished == 2 + 2  # the reply and the offer, and the two turns' outcomes
    assert redis_client.xlen("sgr:outcomes") == 2
    after = stream(redis_client)
    assert sorted(e["type"] for e in after) == ["offer", "reply"]
    reply = next(e for e in after if e["type"] == "reply")
    assert reply == before[0]

    reaper._checked_at = float("-inf")  # check again at once: nothing is doubled
    assert reaper.reap().republished == 0
    assert len(stream(redis_client)) == 2 and redis_client.xlen("sgr:outcomes") == 2
