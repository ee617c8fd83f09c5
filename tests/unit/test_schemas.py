"""The schema sent with each request bounds the answer; the same dict validates the reply."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from testbench.standin_llm import fill
from worker.domain.rules import MESSAGE_MIN_CHARS
from worker.engines.schemas import (
    MESSAGE_MAX,
    MESSAGE_PATTERN,
    AnswerInvalid,
    OfferAnswer,
    PricingLogic,
    RouterSchema,
    offer_schema,
    validate_answer,
)


def answer(schema: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(fill(schema)))


def walk(schema: dict[str, Any]) -> list[dict[str, Any]]:
    out = [schema]
    for sub in schema.get("properties", {}).values():
        out.extend(walk(sub))
    return out


@given(cap=st.floats(1, 60))
def test_a_filled_answer_validates(cap: float) -> None:
    schema = offer_schema(cap, 1.0)
    parsed = validate_answer(json.dumps(answer(schema)), schema)
    assert parsed.pricing.discount_percent <= cap


def test_value_above_cap_fails_against_the_sent_schema() -> None:
    schema = offer_schema(7.5, 1.0)
    data = answer(schema)
    data["pricing"]["discount_percent"] = 7.6
    with pytest.raises(AnswerInvalid, match="discount_percent"):
        validate_answer(json.dumps(data), schema)


def test_stated_cap_must_be_the_cap() -> None:
    schema = offer_schema(7.5, 1.0)
    data = answer(schema)
    data["pricing"]["max_allowed_discount"] = 50
    with pytest.raises(AnswerInvalid, match="max_allowed_discount"):
        validate_answer(json.dumps(data), schema)


def test_string_over_bound_and_extra_key_fail() -> None:
    schema = offer_schema(7.5, 1.0)
    data = answer(schema)
    data["pricing"]["customer_message"] = "x" * (MESSAGE_MAX + 1)
    with pytest.raises(AnswerInvalid, match="customer_message"):
        validate_answer(json.dumps(data), schema)
    data = answer(schema)
    data["routing"]["bonus"] = 1
    with pytest.raises(AnswerInvalid, match="bonus"):
        validate_answer(json.dumps(data), schema)


def test_not_json_is_reported() -> None:
    with pytest.raises(AnswerInvalid, match="not JSON"):
        validate_answer('{"routing": ', offer_schema(5, 1))


def test_schema_is_xgrammar_friendly() -> None:
    """Every string bounded (by maxLength, or by the bounded repetition of its pattern); no
    pattern or format next to a length bound; no multipleOf."""
    for node in walk(offer_schema(12.3, 1.0)):
        assert "multipleOf" not in node
        if node.get("type") == "string" and "enum" not in node:
            assert ("maxLength" in node) != ("pattern" in node)
            assert "format" not in node
            if "pattern" in node:
                assert "minLength" not in node
                assert re.search(r"\{\d+,\d+\}", node["pattern"])
        if node.get("type") == "object":
            assert node["additionalProperties"] is False
            assert node["required"] == list(node["properties"])


def test_schema_follows_the_sgr_order_of_the_models() -> None:
    schema = offer_schema(10, 1)
    assert list(schema["properties"]) == list(OfferAnswer.model_fields)
    assert list(schema["properties"]["routing"]["properties"]) == list(RouterSchema.model_fields)
    pricing = list(schema["properties"]["pricing"]["properties"])
    assert pricing == list(PricingLogic.model_fields)
    assert pricing[:4] == [
        "churn_analysis",
        "financial_analysis",
        "margin_math",
        "max_allowed_discount",
    ]
    assert pricing[-2:] == ["discount_percent", "customer_message"]


@given(cap=st.floats(0.5, 60), low=st.floats(0, 5))
def test_the_cap_bounds_both_numbers(cap: float, low: float) -> None:
    pricing = offer_schema(cap, low)["properties"]["pricing"]["properties"]
    assert pricing["max_allowed_discount"]["minimum"] == cap
    assert pricing["max_allowed_discount"]["maximum"] == cap
    assert pricing["discount_percent"]["maximum"] == cap
    assert pricing["discount_percent"]["minimum"] == min(low, cap)


def test_texts_are_short_for_a_small_model_and_the_message_has_a_floor() -> None:
    """Every reasoning text is bounded short (a 135M model fills any room it gets); the message
    may not be shorter than the rules' minimum, so an empty or two-word message cannot be
    generated at all."""
    schema = offer_schema(10, 1)
    texts = [n for n in walk(schema) if n.get("type") == "string" and "enum" not in n]
    message = schema["properties"]["pricing"]["properties"]["customer_message"]
    assert all(n["maxLength"] <= 80 for n in texts if n is not message)
    data = answer(schema)
    for length, ok in [
        (MESSAGE_MIN_CHARS - 1, False),
        (MESSAGE_MIN_CHARS, True),
        (MESSAGE_MAX, True),
        (MESSAGE_MAX + 1, False),
    ]:
        data["pricing"]["customer_message"] = "W" + "e" * (length - 2) + "."
        if ok:
            validate_answer(json.dumps(data), schema)
        else:
            with pytest.raises(AnswerInvalid, match="customer_message"):
                validate_answer(json.dumps(data), schema)


# What a model (or a server that dropped the schema) could write that a sentence pattern refuses:
# each one would put a number, a sign, a link, markup or a second sentence into a published message.
NOT_ONE_SENTENCE = [
    "Come back for 95 percent off today, friend.",  # fine words, but digits below
    "Take 95% off your cart if you come back now.",
    "Your cart is waiting, only $5 more to go now.",
    "Your cart is waiting for you at evil.example now.",
    "Visit https://evil.example to claim your reward.",
    "We saved your cart. Come back soon to finish it.",
    "We saved your cart! And we would love to see you.",
    "Use SGR-ABCD-EFGH-IJKL before it expires, friend.",
    'We saved your cart, "come back" they all say now.',
    "We saved your cart <b>come back</b> soon, friend.",
    "we saved your cart and would love to see you back.",
    "We saved your cart and would love to see you back",
    "We saved your cart\nand would love to see you back.",
    "Wir haben Ihren Warenkorb für Sie gespeichert.",
    "We saved your cart and would love to see you back. ",
    "Ｗe saved your cart and would love to see you back.",
    "We saved your cart and would love to see you back\u200b.",
]


@pytest.mark.parametrize("text", NOT_ONE_SENTENCE)
def test_the_message_is_one_plain_sentence(text: str) -> None:
    schema = offer_schema(10, 1)
    data = answer(schema)
    data["pricing"]["customer_message"] = text
    with pytest.raises(AnswerInvalid, match="customer_message"):
        validate_answer(json.dumps(data), schema)


@given(
    st.from_regex(MESSAGE_PATTERN, fullmatch=True),
)
def test_every_sentence_the_pattern_admits_passes_the_safety_checks(text: str) -> None:
    """The grammar leaves no way to a digit, a sign, a control character or a code-like token
    with digits; number words and offer words are the rules' to refuse (they stay in
    message_problems)."""
    from worker.domain.rules import message_problems

    problems = message_problems(text)
    assert not any(
        p.startswith(
            (
                "message_has_number:",
                "message_has_percent_or_currency_sign",
                "message_has_control_character",
            )
        )
        for p in problems
    ), problems
    assert MESSAGE_MIN_CHARS <= len(text) <= MESSAGE_MAX


def test_the_prompts_worked_examples_are_valid_answers_the_rules_accept() -> None:
    """The examples shown to the model are answers the schema and the rules accept as they are
    (a small model copies what it is shown)."""
    from worker.domain.rules import check_answer
    from worker.engines.prompts import EXAMPLES
    from worker.settings import load_settings

    cfg = load_settings().rule_config()
    for facts, example in EXAMPLES:
        cap = float(facts["cap_percent"])  # type: ignore[arg-type]
        parsed = validate_answer(json.dumps(example), offer_schema(cap, cfg.min_discount_pct))
        p = parsed.pricing
        assert (
            check_answer(p.discount_percent, p.max_allowed_discount, p.customer_message, cap, cfg)
            == []
        )
