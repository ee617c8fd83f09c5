"""The answer's reasoning stays in the hot store for the audit and is on the offers stream only
with SGR_PUBLISH_REASONING=1, its texts the message checks refuse withheld and its numbers left
out; a refused claim is named as the exporter counts it."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import fakeredis

from worker.domain.model import Offer
from worker.domain.rules import WITHHELD, public_reasoning
from worker.keys import Keys
from worker.metrics import _problems
from worker.publish import Publisher
from worker.settings import Settings

REASONING = {
    "routing": {
        "intent": "hesitant",
        "tone": "friendly",
        "summary": "new customer, no past orders",
    },
    "pricing": {
        "churn_analysis": "no history yet",
        "financial_analysis": "cart 120 EUR, margin 40",
        "margin_math": "see https://evil.example.com",
        "max_allowed_discount": 5.0,
        "discount_percent": 4.9999,
        "customer_message": "Your cart is saved and waiting for you whenever you are ready.",
    },
}


def offer() -> Offer:
    now = datetime(2026, 12, 1, 10, tzinfo=UTC)
    return Offer(
        offer_id="o1", event_id="e1", session_id="s1", user_id="u1", currency="EUR",
        cart_value=120.0, margin=0.4, segment="new_customer", cap_pct=5.0, discount_pct=4.99,
        code="SGR-AAAA-BBBB-CCCC", expires_at=now + timedelta(hours=48), engine="vllm",
        model="m", reasoning=REASONING, message="Hello", guardrail=None, created_at=now,
    )  # fmt: skip


def entry(publish_reasoning: bool) -> dict[bytes, bytes]:
    client = fakeredis.FakeRedis()
    keys = Keys.from_settings(Settings())
    Publisher(client, keys, publish_reasoning=publish_reasoning).publish(offer())
    ((_, fields),) = client.xrange(keys.offers_stream)
    return fields  # type: ignore[no-any-return]


def test_reasoning_is_off_the_stream_by_default() -> None:
    assert b"reasoning" not in entry(False)
    assert Settings().publish_reasoning is False


def test_published_reasoning_withholds_what_the_checks_refuse_and_every_number() -> None:
    shown = json.loads(entry(True)[b"reasoning"])
    assert shown["routing"]["summary"] == "new customer, no past orders"
    assert shown["pricing"]["financial_analysis"] == WITHHELD  # a number the model wrote
    assert shown["pricing"]["margin_math"] == WITHHELD  # a link
    assert "discount_percent" not in shown["pricing"]  # the model's raw figure: not the offer's
    assert "max_allowed_discount" not in shown["pricing"]
    assert public_reasoning(REASONING)["pricing"] == shown["pricing"]


def test_a_refused_claim_is_named_as_the_exporter_counts_it() -> None:
    error = "message_claims_refund: 'refund'; message_not_in_catalogue: 'x'"
    assert _problems(error) == ["message_claims_refund", "message_not_in_catalogue"]
