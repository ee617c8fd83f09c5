"""The stream entries a real run publishes validate against docs/schemas: the parity run's mixed
stream (abandonments, cart updates, orders, negotiation turns with counter-offers and replies,
replays, another customer's session, bad payloads) through batch jobs, plus the bridge's
refusals, on a real redis-server and a real SQLite hot store; and every valid event of it
validates against the event schema."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import redis
from jsonschema import Draft202012Validator

from producers.bridge import Bridge
from tests.conftest import event
from tests.integration.test_runner_parity import mixed_stream, runtime_for
from worker import jobs
from worker.domain.events import InvalidEvent, parse_event
from worker.publish import Publisher
from worker.runtime import install

pytestmark = pytest.mark.integration
SCHEMAS = Path(__file__).resolve().parents[2] / "docs" / "schemas"


def validator(name: str) -> Draft202012Validator:
    return Draft202012Validator(json.loads((SCHEMAS / f"{name}.schema.json").read_text()))


def test_every_published_entry_validates_against_its_schema(
    redis_client: redis.Redis, data_dir: Path
) -> None:
    runtime = install(runtime_for(data_dir, redis_client, ""))
    keys = runtime.keys
    try:
        payloads = mixed_stream()
        for start in range(0, len(payloads), 7):
            jobs.handle_batch(payloads[start : start + 7])
        for item in (json.dumps(event(event_id="r1", margin=1.7)), "{not json"):
            redis_client.rpush(keys.events_in, item)
        Bridge(
            redis_client, keys.queue, keys.events_in, keys.events_rejected,
            dead_letters=keys.dead_letters, alerts=keys.queue_alerts,
            outcomes=Publisher(redis_client, keys),
        ).run(once=True)  # fmt: skip
    finally:
        runtime.deps.hot.close()

    seen: dict[str, list[dict[str, Any]]] = {}
    for stream in (keys.offers_stream, keys.outcomes_stream):
        for _id, fields in redis_client.xrange(stream):  # type: ignore[union-attr]
            entry = {k.decode(): v.decode() for k, v in fields.items()}
            seen.setdefault(entry["type"], []).append(entry)
    assert set(seen) == {"offer", "reply", "outcome", "void"}, set(
        seen
    )  # void: an order closed one
    for kind, entries in seen.items():
        check = validator(kind)
        for entry in entries:
            problems = [
                f"{'.'.join(map(str, e.path))}: {e.message}" for e in check.iter_errors(entry)
            ]
            assert not problems, (kind, entry, problems)
    # and the schemas bite: a wrong value in a real entry is found
    broken = {
        "offer": {"discount_pct": "7,25"},
        "reply": {"offer_id": "8e288a94f211dca5"},
        "outcome": {"outcome": "maybe"},
    }
    for kind, change in broken.items():
        assert list(validator(kind).iter_errors({**seen[kind][0], **change})), kind
    # the run is worth checking: counter-offers with supersedes, every kind of outcome
    assert any(e["supersedes"] for e in seen["offer"]) and any(
        not e["supersedes"] for e in seen["offer"]
    )
    assert all(e["model"] == "rules" for e in seen["offer"] + seen["reply"])  # the rules engine
    assert {e["outcome"] for e in seen["outcome"]} == {
        "offer",
        "no_offer",
        "dead_letter",
        "rejected",
    }
    # and the shop's own events: the valid ones validate against the event schema
    check = validator("event")
    valid = 0
    for payload in payloads:
        try:
            parse_event(payload)
        except InvalidEvent:
            continue
        assert not list(check.iter_errors(payload)), payload
        valid += 1
    assert valid >= 40


def test_a_void_notice_as_documented_validates() -> None:
    """A void notice as ``VoidNotice.stream_entry`` writes it (an order closed an offer)."""
    from datetime import UTC, datetime

    from worker.domain.model import VoidNotice

    notice = VoidNotice(
        offer_id="8e288a94f211dca5", code="SGR-7KQX-M4TZ-W9HC", user_id="u1", session_id="s1",
        reason="order_completed", order_event_id="e-order-1",
        voided_at=datetime(2026, 12, 1, 11, tzinfo=UTC),
    ).stream_entry()  # fmt: skip
    validator("void").validate(notice)
    assert list(validator("void").iter_errors({**notice, "offer_id": ""}))
