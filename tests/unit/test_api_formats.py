"""One JSON form per value across the API's answers and `sgr codes --json`: a percentage is a
float (``8.0``), a time is UTC with microseconds and ``+00:00`` (the streams' form), a refused
value is the value as text, not Python's repr of it."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from fastapi.exceptions import RequestValidationError

from stores.base import HotStore
from stores.hot import open_hot_store
from tests.conftest import event
from worker.api.events import field_problems
from worker.api.offers import offer_out
from worker.api.problems import short, validation_problem
from worker.api.schemas import TIME_PATTERN, CustomerOffers, EventOutcome, OfferOut
from worker.domain.codes import new_code
from worker.domain.events import InvalidEvent, parse_event
from worker.domain.model import Offer
from worker.redemption import redeem_code, verify_code

# a whole minute: pydantic's own form would drop the microseconds (and write Z)
NOW = datetime(2026, 12, 1, 12, tzinfo=UTC)
STREAM_TIME = json.loads((Path(__file__).parents[2] / "docs/schemas/offer.schema.json").read_text())


@pytest.fixture
def hot(hot_store_url: str, tmp_path: Path) -> Iterator[HotStore]:
    store = open_hot_store(hot_store_url, tmp_path / "hot.sqlite")
    yield store
    store.close()


def stored(hot: HotStore, pct: float = 2.0) -> Offer:
    code = new_code()
    offer = Offer(
        offer_id=f"o-{code[-9:]}", event_id=f"e-{code[-9:]}", session_id="s", user_id="u1",
        currency="EUR", cart_value=120.0, margin=0.4, segment="mid", cap_pct=10.0,
        discount_pct=pct, code=code, expires_at=NOW + timedelta(hours=48), engine="policy",
        model=None, reasoning={}, message="Hi", guardrail=None,
        created_at=NOW - timedelta(hours=1),
    )  # fmt: skip
    hot.insert_offer(offer)
    return offer


def raw(answer: dict[str, Any], name: str) -> str:
    """The value's JSON text as the answer's body carries it."""
    found = re.search(rf'"{name}": ([^,}}]+)', json.dumps(answer))
    assert found, (name, answer)
    return found[1]


def test_the_same_offer_reads_alike_in_verify_redeem_and_the_offers_routes(hot: HotStore) -> None:
    offer = stored(hot)
    got = hot.get_offer(offer.offer_id)
    assert got is not None
    one = offer_out(got, "live").model_dump(mode="json")
    listed = CustomerOffers(user_id="u1", offers=[offer_out(got, "live")]).model_dump(mode="json")
    valid = verify_code(hot, offer.code, "u1", NOW).as_json()
    done = redeem_code(hot, offer.code, "u1", NOW).as_json()
    for name in ("discount_pct", "expires_at"):
        forms = {raw(a, name) for a in (one, listed["offers"][0], valid, done)}
        assert len(forms) == 1, (name, forms)
    assert raw(done, "discount_pct") == "2.0"
    assert raw(done, "expires_at") == '"2026-12-03T12:00:00.000000+00:00"'
    assert done["redeemed_at"] == "2026-12-01T12:00:00.000000+00:00"


def test_every_time_the_api_answers_is_the_streams_form() -> None:
    berlin = datetime(2026, 12, 1, 13, tzinfo=timezone(timedelta(hours=1)))
    pattern = STREAM_TIME["properties"]["expires_at"]["pattern"]
    assert pattern == TIME_PATTERN  # the one form of docs/schemas/*.json
    outcome = EventOutcome(
        event_id="e", type="cart_abandoned", user_id="u", session_id="s", outcome="scheduled",
        reason=None, offer_id=None, error=None, attempts=1, reply=None, route=None, turn=None,
        occurred_at=berlin, enqueued_at=NOW, started_at=NOW, finished_at=NOW, due_at=berlin,
    )  # fmt: skip
    body = json.loads(outcome.model_dump_json())
    times = {k: v for k, v in body.items() if k.endswith("_at")}
    assert times["due_at"] == "2026-12-01T12:00:00.000000+00:00"
    assert all(re.match(pattern, v) for v in times.values()), times
    schema = OfferOut.model_json_schema(mode="serialization")["properties"]["expires_at"]
    assert schema["pattern"] == pattern and schema["format"] == "date-time"


def refused(payload: dict[str, Any]) -> list[dict[str, Any]]:
    with pytest.raises(InvalidEvent) as info:
        parse_event(payload)
    return [p.model_dump() for p in field_problems(0, info.value)]


def test_a_refused_string_is_itself_and_a_number_its_json_text() -> None:
    [kind] = refused(event("cart_abandonned", event_id="f-1"))
    assert kind["field"] == "type" and kind["value"] == "cart_abandonned"  # not "'cart_abandonned'"
    assert "got" not in kind["message"] and kind["event_id"] == "f-1"
    [value] = refused(event(event_id="f-2", cart={"currency": "EUR", "value": -5, "margin": 0.2}))
    assert (value["field"], value["value"]) == ("cart.value", "-5")
    [margin] = refused(event(event_id="f-3", cart={"currency": "EUR", "value": 9, "margin": True}))
    assert margin["value"] == "true"  # JSON's, not Python's True
    [zone] = refused(event(event_id="f-4", timezone="Mars/Base"))
    assert zone["value"] == "Mars/Base"
    with pytest.raises(InvalidEvent) as info:
        parse_event(event(event_id="f-4", timezone="Mars/Base"))
    assert info.value.errors[0].endswith("(got 'Mars/Base')")  # the contract's line as it was


def test_short_cuts_the_text_not_a_repr() -> None:
    assert short("x" * 100) == "x" * 80 + "... (100 chars)"
    assert short(b"{bad") == "{bad"
    assert [short(v) for v in (-5, 2.5, None, False, [1, "a"], {"a": 1})] == [
        "-5", "2.5", "null", "false", '[1, "a"]', '{"a": 1}'
    ]  # fmt: skip
    assert short(list(range(100))).endswith("... (390 chars)")


def test_fastapi_s_refusals_show_the_value_alike() -> None:
    exc = RequestValidationError(
        [
            {"type": "string_type", "loc": ("body", "user_id"), "msg": "bad", "input": 5},
            {
                "type": "string_pattern_mismatch",
                "loc": ("body", "order", "currency"),
                "msg": "bad",
                "input": "eur",
            },
            {"type": "missing", "loc": ("body", "user_id"), "msg": "Field required", "input": {}},
        ]  # fmt: skip
    )
    problem = validation_problem(exc).body()
    assert [e.get("value") for e in problem["errors"]] == ["5", "eur", None]  # None: left out
    assert "(got eur)" in problem["detail"] and "(got 5)" in problem["detail"]
