"""The JSON Schemas in docs/schemas: the event's is the one the pydantic contract makes (``sgr
docs schemas`` keeps it equal), it agrees with the contract on what it accepts and refuses, each
stream entry's schema names exactly the fields the code publishes, and docs/contract.md's table
states the contract's limits. The published entries themselves are validated against these
schemas in tests/integration/test_schemas_live.py."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from typer.testing import CliRunner

from tests.conftest import NOW, event
from worker.cli import app
from worker.cli.docs import event_schema_text
from worker.domain import events
from worker.domain.conversation import REPLY_STREAM_FIELDS
from worker.domain.events import CartEvent, InvalidEvent, parse_event
from worker.domain.model import OUTCOME_STREAM_FIELDS, STREAM_FIELDS, VOID_STREAM_FIELDS

ROOT = Path(__file__).resolve().parents[2]
SCHEMAS = ROOT / "docs" / "schemas"


def schema(name: str) -> dict[str, Any]:
    return json.loads((SCHEMAS / f"{name}.schema.json").read_text(encoding="utf-8"))


def test_the_event_schema_is_the_one_the_contract_makes() -> None:
    assert (SCHEMAS / "event.schema.json").read_text(encoding="utf-8") == event_schema_text()
    done = CliRunner().invoke(app, ["docs", "schemas", "--output", str(SCHEMAS), "--check"])
    assert done.exit_code == 0, done.output


def test_sgr_docs_schemas_check_fails_on_a_stale_file(tmp_path: Path) -> None:
    (tmp_path / "event.schema.json").write_text("{}\n")
    done = CliRunner().invoke(app, ["docs", "schemas", "--output", str(tmp_path), "--check"])
    assert done.exit_code == 1 and "out of date" in done.output
    assert CliRunner().invoke(app, ["docs", "schemas", "--output", str(tmp_path)]).exit_code == 0
    assert (tmp_path / "event.schema.json").read_text() == event_schema_text()


@pytest.mark.parametrize("name", ["event", "offer", "reply", "outcome", "void"])
def test_each_schema_is_a_valid_json_schema(name: str) -> None:
    Draft202012Validator.check_schema(schema(name))


def test_each_entry_schema_names_exactly_the_published_fields() -> None:
    assert set(schema("offer")["properties"]) == {*STREAM_FIELDS, "type"}
    assert set(schema("reply")["properties"]) == set(REPLY_STREAM_FIELDS)
    assert set(schema("outcome")["properties"]) == set(OUTCOME_STREAM_FIELDS)
    assert set(schema("outcome")["required"]) == set(OUTCOME_STREAM_FIELDS)
    assert set(schema("void")["properties"]) == set(VOID_STREAM_FIELDS)
    assert set(schema("void")["required"]) == set(VOID_STREAM_FIELDS)
    assert set(schema("event")["properties"]) == set(CartEvent.model_fields)
    # cap_pct only with SGR_PUBLISH_CAP=1; type absent on entries of older releases
    assert set(schema("offer")["required"]) == set(STREAM_FIELDS) - {"cap_pct"}


def _cart(**change: Any) -> dict[str, Any]:
    return event(cart={"currency": "EUR", "value": 120, "margin": 0.4, **change})


ACCEPTED = [
    event(),
    event("item_added", value=0.0, margin=0.0),
    event(schema_version=1, inventory="low_stock"),
    event("order_completed"),
    event("customer_message", message="Too expensive."),
    event(
        cart={
            "currency": "USD",
            "items": [
                {"sku": "a", "quantity": 2, "unit_price": 10.5, "unit_cost": 4},
            ],
        }
    ),  # fmt: skip
    _cart(value=events.MAX_CART_VALUE),
]
REFUSED = [
    (_cart(margin=1.7), "cart.margin"),
    (_cart(value=events.MAX_CART_VALUE + 1), "cart.value"),
    (_cart(value=True), "cart.value"),  # a boolean is no number, in both
    (_cart(currency="eur"), "cart.currency"),
    (event(schema_version=2), "schema_version"),
    (event(extra_field=1), "extra_field"),
    (event("cart_abandoned", cart=None), "cart"),
    ({k: v for k, v in event().items() if k != "cart"}, "cart"),
    (event("customer_message"), "message"),
    (event(event_id=""), "event_id"),
    (event(event_id="x" * 129), "event_id"),
    (event(type="order_placed"), "type"),
    (event(cart={"currency": "EUR"}), "cart"),
    (
        event(
            cart={
                "currency": "EUR",
                "items": [{"sku": "a", "quantity": 0, "unit_price": 1, "unit_cost": 1}],
            }
        ),
        "quantity",
    ),  # fmt: skip
    (
        event(
            cart={
                "currency": "EUR",
                "items": [{"sku": "a", "quantity": 1, "unit_price": "1", "unit_cost": 1}],
            }
        ),
        "unit_price",
    ),  # fmt: skip
    (event(occurred_at=12345), "occurred_at"),
    (event(message="x" * (events.MAX_MESSAGE_CHARS + 1)), "message"),
]


@pytest.mark.parametrize("payload", ACCEPTED)
def test_the_event_schema_accepts_what_the_contract_accepts(payload: dict[str, Any]) -> None:
    parse_event(payload)
    Draft202012Validator(schema("event")).validate(json.loads(json.dumps(payload)))


@pytest.mark.parametrize(("payload", "field"), REFUSED)
def test_the_event_schema_refuses_what_the_contract_refuses(
    payload: dict[str, Any], field: str
) -> None:
    with pytest.raises(InvalidEvent) as refused:
        parse_event(payload, NOW)
    assert field in str(refused.value)
    problems = list(Draft202012Validator(schema("event")).iter_errors(payload))
    assert problems, f"the schema accepts what the contract refuses: {payload}"


def test_the_contract_table_states_its_limits() -> None:
    text = (ROOT / "docs" / "contract.md").read_text(encoding="utf-8")
    table = text[text.index("## Events in") : text.index("## Offers out")]
    assert f"| `schema_version` | `{events.SCHEMA_VERSION}` |" in table
    assert f"0..{events.MAX_CART_VALUE:,}" in table  # cart.value: 0..10,000,000
    assert f"at most {events.MAX_ITEMS}" in table
    assert f"up to {events.MAX_MESSAGE_CHARS:,} chars" in table
    assert "docs/schemas/event.schema.json" in text or "schemas/event.schema.json" in text
