"""The strict contract under hostile input: booleans, strings and epochs are not numbers or times,
ids carry no invisible or surrounding characters, times stay within bounds, and whatever the
payload, parse_event either returns an event or raises InvalidEvent naming the field."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import fakeredis
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from producers.consumer import parse_entry
from tests.conftest import NOW, event
from worker.domain.events import InvalidEvent, TimeLimits, parse_event
from worker.domain.model import Offer
from worker.engines.schemas import AnswerInvalid, offer_schema, validate_answer
from worker.keys import Keys
from worker.publish import Publisher
from worker.settings import Settings, load_settings

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


# --- a cart's given value and margin must agree with its items ---------------------------------
def item(price: Any, cost: Any, quantity: int = 1, sku: str = "A") -> dict[str, Any]:
    return {"sku": sku, "quantity": quantity, "unit_price": price, "unit_cost": cost}


def itemized(items: list[dict[str, Any]], **given: Any) -> dict[str, Any]:
    return event(cart={"currency": "EUR", "items": items, **given})


@pytest.mark.parametrize(
    ("payload", "field", "given", "derived"),
    [
        # the case: goods worth 1 EUR at 1 % margin, sent as 90 % margin
        (itemized([item(1, 0.99)], margin=0.9), "cart.margin", "0.9", "0.01"),
        (itemized([item(1, 0.99)], value=1, margin=0.9), "cart.margin", "0.9", "0.01"),
        (itemized([item(1, 0.99)], value=1000), "cart.value", "1000", "1.0"),
        (itemized([item(100, 90, 3)], value=30, margin=0.1), "cart.value", "30", "300.0"),
        (itemized([item(10, 12)], margin=0.5), "cart.margin", "0.5", "0.0"),  # sold at a loss
        (itemized([item(0, 0)], value=50), "cart.value", "50", "0.0"),
        (itemized([item(0, 0)], margin=1), "cart.margin", "1", "0.0"),
        (
            itemized([item(50, 25), item(50, 25, sku="B")], value=100.02),
            "cart.value",
            "100.02",
            "100.0",
        ),
        (itemized([item(100, 50)], margin=0.506), "cart.margin", "0.506", "0.5"),
        (itemized([item(100, 50)], margin=0.494), "cart.margin", "0.494", "0.5"),
        (itemized([item(1_000_000, 1, 10_000)], value=0), "cart.value", "0", "10000000000"),
    ],
)
def test_a_cart_that_disagrees_with_its_items_is_refused_by_name(
    payload: dict[str, Any], field: str, given: str, derived: str
) -> None:
    with pytest.raises(InvalidEvent) as info:
        parse_event(payload)
    [line] = info.value.errors  # one error, not a cascade
    assert line.startswith(f"{field}: disagrees with the items: given {given}")
    assert f"the items make {derived}" in line
    assert "tolerance 0.01)" in line if field == "cart.value" else "tolerance 0.005)" in line


@pytest.mark.parametrize(
    ("payload", "value", "margin"),
    [
        (itemized([item(1, 0.99)], value=1, margin=0.01), 1, 0.01),
        (itemized([item(1, 0.99)], value=1.01, margin=0.015), 1.01, 0.015),  # at the tolerance
        (itemized([item(3, 2)], margin=0.33), 3.0, 0.33),  # 0.333... rounded by the shop
        (itemized([item(10, 12)], margin=0), 10.0, 0.0),  # a loss is margin 0 (clipped)
        (itemized([item(0.3333, 0.1111, 3)], value=1.0), 1.0, pytest.approx(2 / 3, abs=1e-4)),
    ],
)
def test_a_cart_that_agrees_with_its_items_within_the_tolerance_passes(
    payload: dict[str, Any], value: float, margin: float
) -> None:
    cart = parse_event(payload).cart
    assert cart is not None
    assert cart.total == value and cart.margin_fraction == margin  # the given values are kept


money = st.decimals(min_value=0, max_value=10_000, places=2, allow_nan=False)
line_items = st.lists(
    st.tuples(money, money, st.integers(1, 50)).map(lambda t: item(float(t[0]), float(t[1]), t[2])),
    min_size=1,
    max_size=6,
)


def _derived(items: list[dict[str, Any]]) -> tuple[float, float]:
    cart = parse_event(itemized(items)).cart
    assert cart is not None
    return cart.total, cart.margin_fraction


@settings(max_examples=200, deadline=None)
@given(line_items, st.floats(-0.01, 0.01), st.floats(-0.005, 0.005))
def test_values_within_the_tolerance_of_the_items_pass(
    items: list[dict[str, Any]], dv: float, dm: float
) -> None:
    value, margin = _derived(items)
    given_value, given_margin = max(0.0, value + dv), min(1.0, max(0.0, margin + dm))
    cart = parse_event(itemized(items, value=given_value, margin=given_margin)).cart
    assert cart is not None and cart.total == given_value and cart.margin_fraction == given_margin


@settings(max_examples=200, deadline=None)
@given(
    line_items,
    st.floats(0.0101, 1_000_000) | st.floats(-1_000_000, -0.0101),
    st.sampled_from(["value", "margin"]),
)
def test_values_beyond_the_tolerance_of_the_items_are_refused(
    items: list[dict[str, Any]], off: float, field: str
) -> None:
    value, margin = _derived(items)
    if field == "value":
        wrong: dict[str, Any] = {"value": value + off}
        if not 0 <= value + off <= 10_000_000:
            return  # refused by the field's own range, tested elsewhere
    else:
        wrong = {"margin": margin + off / 2_000_000 + (0.0051 if off > 0 else -0.0051)}
        if not 0 <= wrong["margin"] <= 1:
            return
    with pytest.raises(InvalidEvent) as info:
        parse_event(itemized(items, **wrong))
    [line] = info.value.errors
    assert line.startswith(f"cart.{field}: disagrees with the items: given ")
    assert f"given {wrong[field]}" in line


# --- offers out: the cap stays off the stream unless SGR_PUBLISH_CAP=1 -------------------------
def _stream_offer(offer_id: str = "o1") -> Offer:
    return Offer(
        offer_id=offer_id, event_id="e1", session_id="s1", user_id="u1", currency="EUR",
        cart_value=120.0, margin=0.4, segment="mid", cap_pct=12.0, discount_pct=6.0,
        code="SGR-AAAA-BBBB-CCCC", expires_at=NOW + timedelta(hours=48), engine="policy",
        model=None, reasoning={}, message="Hello", guardrail=None, created_at=NOW,
    )  # fmt: skip


def _published(client: fakeredis.FakeRedis) -> list[dict[str, str]]:
    return [
        {k.decode(): v.decode() for k, v in fields.items()}
        for _id, fields in client.xrange("sgr:offers")
    ]


@pytest.mark.parametrize("publish_cap", [False, True])
def test_the_cap_is_published_only_when_asked_for(publish_cap: bool) -> None:
    client = fakeredis.FakeRedis()
    keys = Keys.from_settings(Settings())
    publisher = Publisher(client, keys, publish_cap=publish_cap)
    listener = client.pubsub(ignore_subscribe_messages=True)
    listener.subscribe(keys.offers_channel)
    assert publisher.publish(_stream_offer("o1"))
    assert publisher.publish_many([_stream_offer("o2"), _stream_offer("o3")]) == [True, True]
    reply = {"type": "reply", "reply_id": "reply-m1", "cap_pct": "12.0", "message": "Hi"}
    assert publisher.publish_entry("reply-m1", reply)
    entries = _published(client)
    assert len(entries) == 4 and reply["cap_pct"] == "12.0"  # the caller's dict is untouched
    for entry in entries:
        assert ("cap_pct" in entry) is publish_cap, entry
        assert entry["message"] in ("Hello", "Hi")
    offers = [e for e in entries if e.get("type", "offer") == "offer"]
    assert all(e["discount_pct"] == "6.0" for e in offers)
    messages = [listener.get_message(timeout=0.05) for _ in range(8)]
    announcements = [json.loads(m["data"]) for m in messages if m]
    assert len(announcements) == 4  # the Pub/Sub announcement is the entry: no cap either
    assert all(("cap_pct" in a) is publish_cap for a in announcements)


def test_the_setting_defaults_to_no_cap_and_reads_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert Settings().publish_cap is False
    monkeypatch.setenv("SGR_PUBLISH_CAP", "1")
    assert load_settings().publish_cap is True


def test_a_consumer_reads_entries_with_and_without_the_cap() -> None:
    with_cap = {b"offer_id": b"o1", b"discount_pct": b"7.25", b"cap_pct": b"12.0", b"model": b""}
    parsed = parse_entry(with_cap)
    assert parsed["discount_pct"] == Decimal("7.25") and parsed["cap_pct"] == Decimal("12.0")
    without = parse_entry({k: v for k, v in with_cap.items() if k != b"cap_pct"})
    assert "cap_pct" not in without and without["discount_pct"] == Decimal("7.25")


def test_the_setting_reaches_the_workers_publisher() -> None:
    """`SGR_PUBLISH_CAP` is what the runtime's publisher is built with (off unless set)."""
    from worker.keys import Keys
    from worker.runtime import publisher
    from worker.settings import Settings

    for value, expected in ((None, False), ("1", True), ("0", False)):
        env = {} if value is None else {"publish_cap": value}
        settings = Settings(**env)  # type: ignore[arg-type]
        built = publisher(fakeredis.FakeRedis(), settings, Keys.from_settings(settings))
        assert built.publish_cap is expected


def test_a_cart_whose_items_add_up_above_the_value_limit_is_refused() -> None:
    """100 items at the largest unit price make 100,000,000: above the 10,000,000 a cart's
    `value` may say, so refused the same way, naming the field and both numbers."""
    from worker.domain.events import InvalidEvent, parse_event

    payload = {
        "event_id": "big", "type": "cart_abandoned", "occurred_at": "2026-12-07T10:00:00+00:00",
        "user_id": "u1", "session_id": "s1",
        "cart": {"currency": "EUR", "items": [
            {"sku": "x", "unit_price": 1_000_000, "unit_cost": 1, "quantity": 100},
        ]},
    }  # fmt: skip
    with pytest.raises(InvalidEvent) as caught:
        parse_event(payload)
    text = str(caught.value)
    assert "cart.value" in text and "100000000" in text and "10000000" in text
    assert "Traceback" not in text
    payload["cart"]["items"][0]["quantity"] = 10  # type: ignore[index]
    assert parse_event(payload).cart is not None  # 10,000,000 exactly is allowed
