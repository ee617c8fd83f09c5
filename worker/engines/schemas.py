"""Schema-Guided Reasoning: the answer's shape, and the bounded JSON schema sent with each request.

The model fills the fields in this order: first the routing (what situation is this?), then the
pricing logic (churn, finances, margin math, the cap), and only then the discount and the message.
``offer_schema(cap)`` puts this cart's cap into the schema, so constrained decoding (xgrammar in
vLLM) cannot produce a discount above it; ``validate_answer`` checks a reply against the very same
schema dict that was sent.
"""

from __future__ import annotations

import json
from typing import Any, Literal

import jsonschema
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from worker.domain.rules import MESSAGE_MIN_CHARS

INTENTS = ("price_sensitive", "hesitant", "comparison_shopping", "distracted", "support_needed")
TONES = ("friendly", "reassuring", "urgent")
# Short bounds, measured on SmolLM2-135M on a CPU (README "A real LLM without a GPU"): a small
# model fills whatever room it gets (repetition until the bound), and every character is decode
# time. The reasoning fields stay, short: they set the order of thought (SGR), not an essay.
SUMMARY_MAX = 48
ANALYSIS_MAX = 48
MESSAGE_MIN = MESSAGE_MIN_CHARS
MESSAGE_MAX = 90
COPY_MAX = 200  # an approved entry (worker/domain/copy.TEXT_MAX), slots unfilled


def sentence_pattern(min_chars: int, max_chars: int) -> str:
    """One English sentence as a regular expression: a capital letter, then letters, spaces,
    commas and apostrophes, then one full stop or exclamation mark that ends it. Enforced while
    generating (xgrammar), it leaves a model no way to write a digit, a percent or currency sign,
    a link, a quote or a second sentence, and it ends the text where the sentence ends instead of
    at a length bound (measured on SmolLM2-135M: README "Prompt and schema variants")."""
    return f"^[A-Z][A-Za-z ,']{{{min_chars - 2},{max_chars - 2}}}[.!]$"


MESSAGE_PATTERN = sentence_pattern(MESSAGE_MIN, MESSAGE_MAX)


class RouterSchema(BaseModel):
    """Step 1: what kind of situation the abandoned cart is, and how to speak to the customer."""

    model_config = ConfigDict(extra="forbid")

    intent: Literal[
        "price_sensitive", "hesitant", "comparison_shopping", "distracted", "support_needed"
    ]
    tone: Literal["friendly", "reassuring", "urgent"]
    summary: str = Field(max_length=SUMMARY_MAX)


class PricingLogic(BaseModel):
    """Step 2, field by field: the reasoning first, the numbers after, the message last."""

    model_config = ConfigDict(extra="forbid")

    churn_analysis: str = Field(max_length=ANALYSIS_MAX)
    financial_analysis: str = Field(max_length=ANALYSIS_MAX)
    margin_math: str = Field(max_length=ANALYSIS_MAX)
    max_allowed_discount: float = Field(ge=0)
    discount_percent: float = Field(ge=0)
    # One sentence (free mode: ``MESSAGE_PATTERN``) or one approved entry (catalogue mode: an enum
    # of the cart's allowed entries); the schema sent with the request says which, and the reply
    # is checked against that schema.
    customer_message: str = Field(min_length=1, max_length=COPY_MAX)


class OfferAnswer(BaseModel):
    model_config = ConfigDict(extra="forbid")

    routing: RouterSchema
    pricing: PricingLogic


def text_field(max_length: int, min_length: int = 0) -> dict[str, Any]:
    bounds = {"minLength": min_length} if min_length else {}
    return {"type": "string", **bounds, "maxLength": max_length}


def object_of(properties: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties),
        "additionalProperties": False,
    }


def sentence_field(min_chars: int, max_chars: int) -> dict[str, Any]:
    """A string that is one bounded sentence (``sentence_pattern``). Its length bound is inside
    the pattern: vLLM refuses a ``pattern`` next to ``minLength``/``maxLength`` for xgrammar."""
    return {"type": "string", "pattern": sentence_pattern(min_chars, max_chars)}


def message_field(choices: tuple[str, ...] | None = None) -> dict[str, Any]:
    """The message's schema: in catalogue mode an enum of the approved entries this cart may get
    (xgrammar enforces an enum: the model can write nothing else), else one bounded sentence."""
    if choices:
        return {"type": "string", "enum": list(choices)}
    return sentence_field(MESSAGE_MIN, MESSAGE_MAX)


def fact_field(fact: str | None, max_length: int) -> dict[str, Any]:
    """A reasoning text that restates a fact of the system's (an enum of that one text, as
    ``max_allowed_discount`` restates the cap), or a bounded free text when none is given."""
    if fact:
        return {"type": "string", "enum": [fact[:max_length]]}
    return text_field(max_length)


def offer_schema(
    cap_pct: float,
    min_pct: float,
    choices: tuple[str, ...] | None = None,
    who: str | None = None,
    churn: str | None = None,
) -> dict[str, Any]:
    """The JSON schema for one request: the cap is a hard bound, every string has a length bound
    (the message's is in its sentence pattern), or the message is one of ``choices`` (the
    approved entries allowed for this cart, catalogue mode). ``who`` and ``churn`` (the system's
    words for the customer, ``prompts.customer_words`` and ``prompts.churn_words``) make the
    summary and the churn analysis restate them: a small model otherwise copies a worked
    example's ("loyal customer" to a new one).

    No ``pattern`` next to a length bound and no ``multipleOf``: vLLM refuses those for xgrammar.
    ``max_allowed_discount`` may only be the cap itself (the model restates the rules' result).
    """
    low = min(min_pct, cap_pct)
    return object_of(
        {
            "routing": object_of(
                {
                    "intent": {"type": "string", "enum": list(INTENTS)},
                    "tone": {"type": "string", "enum": list(TONES)},
                    "summary": fact_field(who, SUMMARY_MAX),
                }
            ),
            "pricing": object_of(
                {
                    "churn_analysis": fact_field(churn, ANALYSIS_MAX),
                    "financial_analysis": text_field(ANALYSIS_MAX),
                    "margin_math": text_field(ANALYSIS_MAX),
                    "max_allowed_discount": {
                        "type": "number",
                        "minimum": cap_pct,
                        "maximum": cap_pct,
                    },
                    "discount_percent": {"type": "number", "minimum": low, "maximum": cap_pct},
                    "customer_message": message_field(choices),
                }
            ),
        }
    )


class AnswerInvalid(ValueError):
    """An engine's reply that is not JSON or does not fit the schema it was asked for."""


def parse_json(text: str, schema: dict[str, Any]) -> Any:
    """A reply parsed strictly (NaN and Infinity are not JSON numbers) and checked against the
    very schema that was sent with the request; AnswerInvalid says what is wrong."""
    try:
        data = json.loads(text, parse_constant=_refuse_constant)
    except json.JSONDecodeError as exc:
        raise AnswerInvalid(f"not JSON: {exc.msg} at char {exc.pos} (got {text[:80]!r})") from None
    except ValueError as exc:
        raise AnswerInvalid(str(exc)) from None
    errors = sorted(
        jsonschema.Draft202012Validator(schema).iter_errors(data), key=lambda e: list(e.path)
    )
    if errors:
        raise AnswerInvalid(
            "; ".join(
                f"{'/'.join(str(p) for p in e.path) or '<answer>'}: [{e.validator}] "
                f"{e.message[:120]}"
                for e in errors
            )
        )
    return data


def validate_answer(text: str, schema: dict[str, Any]) -> OfferAnswer:
    """Parse a reply strictly and check it against the schema that was sent with the request."""
    data = parse_json(text, schema)
    try:
        return OfferAnswer.model_validate(data)
    except ValidationError as exc:  # whatever the reason: an invalid answer, never a crash
        raise AnswerInvalid(f"does not fit the answer's model: {exc.errors()[0]['msg']}") from None


def _refuse_constant(name: str) -> float:
    raise ValueError(f"not strict JSON: {name} is not a number JSON allows")
