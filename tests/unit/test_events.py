"""The event contract: bad input is refused with the field and the value named."""

from __future__ import annotations

import pytest

from tests.conftest import event
from worker.domain.events import EventType, InvalidEvent, parse_event


def error_of(payload: object) -> str:
    with pytest.raises(InvalidEvent) as info:
        parse_event(payload)
    return str(info.value)


def test_valid_event_and_line_items_derive_value_and_margin() -> None:
    payload = event(
        cart={
            "currency": "EUR",
            "items": [
                {"sku": "A", "quantity": 2, "unit_price": 50, "unit_cost": 30},
                {"sku": "B", "quantity": 1, "unit_price": 100.0, "unit_cost": 40.0},
            ],
        }
    )
    parsed = parse_event(payload)
    assert parsed.type is EventType.CART_ABANDONED
    assert parsed.cart is not None
    assert parsed.cart.total == 200.0
    assert parsed.cart.margin_fraction == pytest.approx(0.5)


@pytest.mark.parametrize(
    ("change", "field", "value"),
    [
        ({"type": "cart_exploded"}, "type", "cart_exploded"),
        ({"cart": {"currency": "EUR", "value": -5, "margin": 0.2}}, "cart.value", "-5"),
        ({"cart": {"currency": "EUR", "value": 5, "margin": 1.2}}, "cart.margin", "1.2"),
        ({"cart": {"currency": "EURO", "value": 5, "margin": 0.2}}, "cart.currency", "EURO"),
        ({"occurred_at": "2026-11-28T10:00:00"}, "occurred_at", "2026-11-28T10:00:00"),
        ({"user_id": ""}, "user_id", "''"),
        ({"surprise": 1}, "surprise", "1"),
    ],
)
def test_errors_name_field_and_value(change: dict[str, object], field: str, value: str) -> None:
    text = error_of({**event(), **change})
    assert f"{field}:" in text
    assert value in text


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"user_id": ""}, "user_id: String should have at least 1 character (got '')"),
        ({"session_id": "s" * 129}, "session_id: String should have at most 128 characters"),
    ],
)
def test_an_id_of_the_wrong_length_is_said_in_words_about_text(
    change: dict[str, object], words: str
) -> None:
    """Not pydantic's generic "Value should have at least 1 item after validation": a shop's
    developer reads that the id is text of the wrong length."""
    text = error_of({**event(), **change})
    assert words in text and "item" not in text


def test_ten_megabyte_message_is_refused_without_echoing_it() -> None:
    text = error_of(event(message="x" * 10_000_000))
    assert "message:" in text
    assert "10000000 chars" in text
    assert len(text) < 500


def test_not_an_object_and_bad_json() -> None:
    assert "expected a JSON object" in error_of([1, 2])
    assert "<event>" in error_of("{not json")


def test_cart_is_required_for_cart_events_but_not_for_orders() -> None:
    payload = event()
    del payload["cart"]
    assert "needs a 'cart'" in error_of(payload)
    assert parse_event(event("order_completed")).cart is None
    assert "needs a 'message'" in error_of(event("customer_message"))


def test_missing_fields_are_named_without_echoing_the_event() -> None:
    text = error_of({"event_id": "x1", "type": "cart_abandoned"})
    assert "occurred_at: Field required;" in text
    assert "session_id: Field required" in text
    assert "got" not in text
