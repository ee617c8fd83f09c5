"""Approved copy (worker/domain/copy.py, worker/engines/catalogue.py): the catalogue's checks, the
entries a cart may get, the schema's enum, the rules engine's choice, slots filled only with the
system's values, and the cart path refusing a message that is not an allowed entry (an
OpenAI-compatible STAND-IN at the edge plays the server)."""

from __future__ import annotations

import json
from pathlib import Path

import fakeredis
import jsonschema
import pytest
from hypothesis import given
from hypothesis import strategies as st

from testbench.standin_llm import StandInLLM
from tests.conftest import event, make_deps
from worker.domain import rules
from worker.domain.copy import (
    CartFacts,
    Catalogue,
    CatalogueError,
    CopyEntry,
    allowed,
    choice_problems,
    fill,
    parse_catalogue,
    pick,
)
from worker.domain.events import parse_event
from worker.engines.catalogue import DEFAULT_CATALOGUE, load_catalogue
from worker.engines.schemas import offer_schema
from worker.engines.vllm import VllmEngine
from worker.handlers import cart
from worker.runner import process

DEFAULT = load_catalogue()


def entry(text: str, **tags: object) -> dict[str, object]:
    return {"id": f"e{abs(hash(text)) % 10_000}", "text": text, "tone": "friendly", **tags}


def test_the_shipped_catalogue_loads_and_passes_every_check() -> None:
    assert len(DEFAULT.entries) >= 12
    assert {e.tone for e in DEFAULT.entries} == {"friendly", "reassuring", "urgent"}
    # every segment a rule can give, new customers and low stock included, has some copy
    for segment in ("new_customer", "high_churn", "mid_churn", "low_churn+loyal", "low_churn"):
        for stock, orders in (("in_stock", 0), ("low_stock", 3)):
            assert allowed(DEFAULT, CartFacts(segment, stock, orders))


@pytest.mark.parametrize(
    ("data", "says"),
    [
        ({}, "non-empty list 'entries'"),
        ({"entries": [entry("Your cart is waiting for you.", tone="loud")]}, "tone 'loud'"),
        ({"entries": [entry("Your cart is waiting for you.", segments=["vip"])]}, "segments 'vip'"),
        ({"entries": [entry("Your {thing} is waiting for you.")]}, "slot {thing}"),
        ({"entries": [entry("Your cart is waiting.", colour="red")]}, "unknown field 'colour'"),
        ({"entries": [{"id": "Bad Id", "text": "x", "tone": "friendly"}]}, "id must match"),
    ],
)
def test_a_bad_catalogue_is_one_clear_error(data: object, says: str) -> None:
    with pytest.raises(CatalogueError, match="entry|entries") as info:
        parse_catalogue(data, "shop.json")
    assert says in str(info.value) and "shop.json" in str(info.value)


@pytest.mark.parametrize(
    "text",
    [
        "Take ten percent with your cart today.",  # a number word
        "Use the code at checkout for your cart.",  # an offer word
        "Visit evil.example.com for your cart.",  # a link
        "We will refund you if anything goes wrong.",  # a promise the shop did not make
        "Welcome back, your cart is waiting for you.",  # to new customers too: untrue
    ],
)
def test_a_catalogue_entry_the_message_checks_refuse_is_refused_at_load(
    tmp_path: Path, text: str
) -> None:
    path = tmp_path / "shop.json"
    path.write_text(json.dumps({"entries": [entry(text)]}))
    with pytest.raises(CatalogueError, match="refuse"):
        load_catalogue(path)


def test_an_unreadable_catalogue_names_its_path(tmp_path: Path) -> None:
    with pytest.raises(CatalogueError, match="cannot read"):
        load_catalogue(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(CatalogueError, match="not JSON"):
        load_catalogue(tmp_path / "bad.json")


def test_tags_decide_what_a_cart_may_get() -> None:
    texts = lambda facts: {e.id for e in allowed(DEFAULT, facts)}  # noqa: E731
    new_in_stock = texts(CartFacts("new_customer", "in_stock", 0))
    assert "running-low" not in new_in_stock and "popular" not in new_in_stock  # no scarcity
    assert "again" not in new_in_stock and "loyal-thanks" not in new_in_stock  # no history
    assert "first-order" in new_in_stock
    assert "running-low" in texts(CartFacts("new_customer", "low_stock", 0))
    assert "loyal-thanks" in texts(CartFacts("low_churn+loyal", "in_stock", 9))
    assert "loyal-thanks" not in texts(CartFacts("low_churn", "in_stock", 9))
    assert "first-order" not in texts(CartFacts("high_churn", "in_stock", 4))


def test_an_entry_with_a_slot_the_system_cannot_fill_is_not_allowed() -> None:
    catalogue = parse_catalogue(
        {
            "entries": [
                entry("Your {item} is still in your cart for you."),
                entry("Your cart is waiting for you, {percent} is set aside."),
            ]
        }
    )
    chosen = allowed(catalogue, CartFacts("new_customer", "in_stock", 0))
    assert [e.slots for e in chosen] == [("percent",)]


def test_slots_are_filled_only_with_the_systems_values() -> None:
    assert (
        fill("Use {code} for {percent}.", {"code": "SGR-1", "percent": "5%"}) == "Use SGR-1 for 5%."
    )
    with pytest.raises(CatalogueError, match="item"):
        fill("Your {item} waits.", {"code": "SGR-1"})


@given(st.text(min_size=1, max_size=30))
def test_the_rules_engine_picks_the_same_allowed_entry_for_the_same_event(key: str) -> None:
    pool = allowed(DEFAULT, CartFacts("high_churn", "in_stock", 4))
    first = pick(pool, "reassuring", key)
    assert first is not None and first in pool and first.tone == "reassuring"
    assert pick(pool, "reassuring", key) == first


def test_catalogue_mode_makes_the_message_an_enum_of_the_allowed_entries() -> None:
    pool = allowed(DEFAULT, CartFacts("new_customer", "in_stock", 0))
    schema = offer_schema(5.0, 1.0, tuple(e.text for e in pool))
    field = schema["properties"]["pricing"]["properties"]["customer_message"]
    assert field == {"type": "string", "enum": [e.text for e in pool]}
    answer = {
        "routing": {"intent": "hesitant", "tone": "friendly", "summary": "new customer"},
        "pricing": {
            "churn_analysis": "",
            "financial_analysis": "",
            "margin_math": "",
            "max_allowed_discount": 5.0,
            "discount_percent": 2.0,
            "customer_message": pool[0].text,
        },
    }
    jsonschema.validate(answer, schema)
    answer["pricing"]["customer_message"] = "Thanks for shopping with us again, your cart is ready."
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(answer, schema)
    assert choice_problems(answer["pricing"]["customer_message"], pool)
    assert choice_problems(pool[0].text, pool) == []


def test_the_rules_engines_offer_says_an_approved_sentence(data_dir: Path) -> None:
    deps = make_deps(data_dir, fakeredis.FakeRedis())
    outcome = process(parse_event(event(user="brand-new-customer")), deps)
    offer = deps.hot.get_offer(outcome.offer_id or "")
    assert offer is not None
    sentence, line = offer.message.split("\n")
    found = DEFAULT.by_text(sentence)
    assert found is not None and {"new_customer", "any"} & set(found.segments)
    assert line == rules.offer_line(offer.code, offer.discount_pct, offer.expires_at)


def test_the_model_chooses_and_its_choice_is_used(data_dir: Path) -> None:
    with StandInLLM() as llm:  # answers the first enum value: an allowed entry
        engine = VllmEngine(base_url=llm.url, timeout_s=5, retries=0)
        deps = make_deps(data_dir, fakeredis.FakeRedis(), engine=engine)
        outcome = process(parse_event(event(user="brand-new-customer")), deps)
        sent = llm.requests[0]["response_format"]["json_schema"]["schema"]
    offer = deps.hot.get_offer(outcome.offer_id or "")
    assert offer is not None and offer.engine == "vllm" and outcome.guardrail == ()
    enum = sent["properties"]["pricing"]["properties"]["customer_message"]["enum"]
    assert offer.message.split("\n")[0] == enum[0]
    assert "Thanks for shopping with us again, your cart is ready for you." not in enum


class SaysAnything:
    """A STAND-IN engine that answers a fixed message whatever the schema (a server that drops
    the enum), over the rules engine's answer."""

    name, model = "vllm", "stand-in"

    def __init__(self, inner: object, message: str) -> None:
        self.inner, self.message = inner, message

    def propose(self, request):  # type: ignore[no-untyped-def]
        reply = self.inner.propose(request)  # type: ignore[attr-defined]
        pricing = reply.answer.pricing.model_copy(update={"customer_message": self.message})
        answer = reply.answer.model_copy(update={"pricing": pricing})
        return type(reply)(answer, self.name, self.model)


@pytest.mark.parametrize("mode", ["catalogue", "free"])
def test_a_message_outside_the_catalogue_or_with_a_claim_is_refused_and_recorded(
    data_dir: Path, mode: str
) -> None:
    deps = make_deps(data_dir, fakeredis.FakeRedis())
    claim = "Complete your order now and enjoy a full refund if you are not happy."
    engine = SaysAnything(deps.fallback, claim)
    deps = type(deps)(**{**deps.__dict__, "engine": engine, "message_mode": mode})
    outcome = process(parse_event(event(user="brand-new-customer")), deps)
    expected = "message_not_in_catalogue" if mode == "catalogue" else "message_claims_refund"
    assert any(p.startswith(expected) for p in outcome.guardrail), outcome.guardrail
    offer = deps.hot.get_offer(outcome.offer_id or "")
    assert offer is not None and offer.engine == "policy" and "refund" not in offer.message
    assert expected in (deps.hot.query("SELECT error FROM processed_events")[0]["error"] or "")


def test_the_offer_request_carries_the_allowed_copy_and_free_mode_the_pattern() -> None:
    payload = parse_event(event(user="brand-new-customer"))
    facts = rules.facts_for(payload, cart.EventContext(None, None, None), payload.occurred_at)
    cfg = make_cfg()
    decision = rules.cap_for(facts, cfg)
    request = cart.offer_request(payload, facts, decision, cfg, DEFAULT, "catalogue")
    assert request.catalogue_mode and request.copy == cart.allowed_copy(DEFAULT, facts, decision)
    free = cart.offer_request(payload, facts, decision, cfg, DEFAULT, "free")
    field = free.schema["properties"]["pricing"]["properties"]["customer_message"]
    assert not free.catalogue_mode and "pattern" in field and free.copy == request.copy


def make_cfg() -> rules.RuleConfig:
    from worker.settings import Settings

    return Settings().rule_config()


def test_catalogue_and_entry_types_are_plain_values() -> None:
    one = CopyEntry("a", "Your cart is waiting for you.", "friendly", ("any",), ("any",))
    assert Catalogue((one,)).by_id("a") == one and DEFAULT_CATALOGUE.exists()
