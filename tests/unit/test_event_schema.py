"""The event's JSON Schema (docs/schemas/event.schema.json) against the contract
(worker/domain/events.py): the committed file is the generated one, valid events pass both,
invalid ones are refused by both, and what only the contract can judge is listed as such."""

from __future__ import annotations

import json
import math
import unicodedata
from pathlib import Path
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from producers.synthetic import StreamConfig, event_stream
from tests.conftest import event
from worker.api.eventschema import event_schema
from worker.domain.events import InvalidEvent, parse_event

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = json.loads((ROOT / "docs/schemas/event.schema.json").read_text())
VALIDATOR = Draft202012Validator(SCHEMA)
ITEMS = [{"sku": "A-1", "quantity": 2, "unit_price": 10.5, "unit_cost": 6.25}]


def contract_accepts(payload: Any) -> bool:
    try:
        parse_event(payload)
    except InvalidEvent:
        return False
    return True


def schema_accepts(payload: Any) -> bool:
    return VALIDATOR.is_valid(payload)


VALID = [
    event(),
    event("order_completed"),
    event("customer_message", message="Any discount?"),
    event("cart_updated", inventory="low_stock"),
    event(event_id="e-2", user="u 2", schema_version=1),
    event(cart={"currency": "USD", "items": ITEMS}),
    event(cart={"currency": "EUR", "value": 21.0, "margin": 0.4, "items": ITEMS}),
    {**event(), "occurred_at": "2026-12-01T10:00:00Z"},
    {**event(), "occurred_at": "2026-12-01T10:00:00.123456+02:00"},
]
INVALID = [
    {},
    "not an object",
    [event()],
    event(kind="nope"),
    event(event_id=""),
    event(event_id=" padded"),
    event(user="tab\there"),
    event(event_id="x" * 129),
    {**event(), "occurred_at": "2026-12-01T10:00:00"},  # no zone
    {**event(), "occurred_at": 1764583200},
    {**event(), "extra": 1},
    {**event(), "schema_version": 2},
    event(cart={"currency": "eur", "value": 10, "margin": 0.1}),
    event(cart={"currency": "EUR", "value": -1, "margin": 0.1}),
    event(cart={"currency": "EUR", "value": 10_000_001, "margin": 0.1}),
    event(cart={"currency": "EUR", "value": "10", "margin": 0.1}),
    event(cart={"currency": "EUR", "value": 10, "margin": 1.5}),
    event(cart={"currency": "EUR", "items": [{**ITEMS[0], "quantity": 0}]}),
    event(cart={"currency": "EUR", "items": [{**ITEMS[0], "unit_price": "10.5"}]}),
    {k: v for k, v in event().items() if k != "cart"},  # an abandonment needs a cart
    event("customer_message"),  # a message event needs its message
    event("customer_message", message=""),
    event(inventory="plenty"),
]
# Only the contract can judge these (arithmetic across fields, calendar limits): the schema lets
# them through and the API's 422 comes from the contract.
CONTRACT_ONLY = [
    event(cart={"currency": "EUR", "value": 99.0, "margin": 0.4, "items": ITEMS}),  # disagrees
    {**event(), "occurred_at": "1999-12-31T23:00:00+00:00"},  # before 2000
    event(cart={"currency": "EUR", "items": [{**ITEMS[0], "quantity": 10_000,
                                               "unit_price": 1_000_000}]}),  # derived > limit
    event(event_id="\U000e0001"),  # a format character beyond the BMP
    event(event_id="\u0378"),  # unassigned (in this Unicode version)
]  # fmt: skip


def test_the_committed_schema_is_the_generated_one() -> None:
    assert event_schema() == SCHEMA, "run `make docs`"
    Draft202012Validator.check_schema(SCHEMA)


@pytest.mark.parametrize("payload", VALID)
def test_valid_events_pass_the_schema_and_the_contract(payload: Any) -> None:
    assert contract_accepts(payload)
    assert schema_accepts(payload), list(VALIDATOR.iter_errors(payload))


@pytest.mark.parametrize("payload", INVALID)
def test_invalid_events_are_refused_by_both(payload: Any) -> None:
    assert not contract_accepts(payload)
    assert not schema_accepts(payload)


@pytest.mark.parametrize("payload", CONTRACT_ONLY)
def test_what_only_the_contract_judges_is_refused_by_it(payload: Any) -> None:
    assert schema_accepts(payload) and not contract_accepts(payload)


def test_synthetic_events_pass_both() -> None:
    for payload in event_stream(StreamConfig(sessions=40, seed=11)):
        assert contract_accepts(payload) and schema_accepts(payload), payload


@settings(max_examples=200, deadline=None)
@given(
    ident=st.text(max_size=130),
    value=st.one_of(st.floats(allow_nan=True), st.integers(), st.text(max_size=3)),
)
def test_the_schema_never_accepts_what_the_contract_refuses_for_ids_and_values(
    ident: str, value: Any
) -> None:
    payload = event(event_id=ident, cart={"currency": "EUR", "value": value, "margin": 0.2})
    # unassigned and non-BMP characters are the contract's alone (eventschema._refused_class)
    assume(all(ord(ch) < 0x10000 and unicodedata.category(ch) != "Cn" for ch in ident))
    # NaN is not JSON, and a JSON Schema's bounds cannot refuse it (every comparison is false);
    # the contract refuses it (Python's json.loads reads a NaN literal: the API relies on that)
    assume(not (isinstance(value, float) and math.isnan(value)))
    if schema_accepts(payload) and not contract_accepts(payload):
        pytest.fail(f"the schema accepts what the contract refuses: {payload!r}")
