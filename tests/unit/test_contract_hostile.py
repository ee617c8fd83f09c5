"""The strict contract under hostile input: booleans, strings and epochs are not numbers or times,
ids carry no invisible or surrounding characters, times stay within bounds, and whatever the
payload, parse_event either returns an event or raises InvalidEvent naming the field."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import NOW, event
from worker.domain.events import InvalidEvent, TimeLimits, parse_event
from worker.engines.schemas import AnswerInvalid, offer_schema, validate_answer

LIMITS = TimeLimits(max_age=timedelta(days=30), max_skew=timedelta(minutes=5))


def error_of(payload: Any, now: datetime | None = None) -> str:
    with pytest.raises(InvalidEvent) as info:
        parse_event(payload, now, LIMITS if now else None)
    return str(info.value)


def cart(**change: Any) -> dict[str, Any]:
    return event(cart={"currency": "EUR", "value": 120, "margin": 0.4, **change})


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        (cart(margin=True), "cart.margin"),
        (cart(value="200"), "cart.value"),
        (cart(value=float("nan")), "cart.value"),
        (cart(value=float("inf")), "cart.value"),
        (
            event(
                cart={
                    "currency": "EUR",
                    "items": [{"sku": "A", "quantity": True, "unit_price": 1, "unit_cost": 1}],
                }
            ),
            "cart.items.0.quantity",
        ),
        (
            event(
                cart={
                    "currency": "EUR",
                    "items": [{"sku": "A", "quantity": "3", "unit_price": 1, "unit_cost": 1}],
                }
            ),
            "cart.items.0.quantity",
        ),
        (
            event(
                cart={
                    "currency": "EUR",
                    "items": [{"sku": "A", "quantity": 2.5, "unit_price": 1, "unit_cost": 1}],
                }
            ),
            "cart.items.0.quantity",
        ),
        ({**event(), "occurred_at": 1764590400}, "occurred_at"),
        ({**event(), "occurred_at": "0001-01-01T00:00:00+14:00"}, "occurred_at"),
        ({**event(), "occurred_at": "9999-12-31T23:59:59-01:00"}, "occurred_at"),
        ({**event(), "event_id": "   "}, "event_id"),
        ({**event(), "user_id": "u000104 "}, "user_id"),
        ({**event(), "user_id": " u000104"}, "user_id"),
        ({**event(), "user_id": "u000\x00104"}, "user_id"),
        ({**event(), "user_id": "u000104\u202e"}, "user_id"),
        ({**event(), "session_id": "s\u200b1"}, "session_id"),
        ({**event(), "session_id": "s1\n"}, "session_id"),
    ],
)
def test_hostile_fields_are_refused_by_name(payload: dict[str, Any], field: str) -> None:
    assert f"{field}:" in error_of(payload)


def test_times_too_old_or_in_the_future_are_refused_against_the_clock() -> None:
    assert "future" in error_of(event(at=NOW + timedelta(days=365 * 70)), NOW)
    assert "future" in error_of(event(at=NOW + timedelta(minutes=6)), NOW)
    assert "older than" in error_of(event(at=NOW - timedelta(days=31)), NOW)
    assert parse_event(event(at=NOW - timedelta(days=29)), NOW, LIMITS)
    assert parse_event(event(at=NOW + timedelta(minutes=4)), NOW, LIMITS)


def test_ids_are_case_sensitive_and_exact() -> None:
    assert parse_event({**event(), "user_id": "U000104"}).user_id == "U000104"
    assert parse_event({**event(), "user_id": "u000104"}).user_id == "u000104"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=5)
    ),
    max_leaves=10,
)
FIELDS = [
    "event_id",
    "type",
    "occurred_at",
    "user_id",
    "session_id",
    "cart",
    "inventory",
    "message",
]


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(
    st.dictionaries(st.sampled_from(FIELDS), json_values, max_size=8),
    st.sampled_from([None, NOW]),
)
def test_any_payload_is_an_event_or_one_invalid_event_error(
    fields: dict[str, Any], now: datetime | None
) -> None:
    payload = {**event(), **fields}
    try:
        parsed = parse_event(payload, now, LIMITS if now else None)
    except InvalidEvent as exc:
        assert exc.errors and all(":" in line for line in exc.errors)
        return
    assert parsed.occurred_at.astimezone(UTC)  # never an overflow later


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.text(max_size=400))
def test_any_answer_text_is_an_answer_or_answer_invalid(text: str) -> None:
    schema = offer_schema(12.0, 1.0)
    try:
        answer = validate_answer(text, schema)
    except AnswerInvalid:
        return
    assert answer.pricing.discount_percent <= 12.0


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_numbers_in_an_answer_are_an_invalid_answer(constant: str) -> None:
    good = {
        "routing": {"intent": "hesitant", "tone": "friendly", "summary": "s"},
        "pricing": {
            "churn_analysis": "a",
            "financial_analysis": "b",
            "margin_math": "c",
            "max_allowed_discount": 12.0,
            "discount_percent": 5.0,
            "customer_message": "Your cart is waiting for you.",
        },
    }
    text = json.dumps(good).replace("5.0", constant)
    with pytest.raises(AnswerInvalid, match="not strict JSON|number"):
        validate_answer(text, offer_schema(12.0, 1.0))
