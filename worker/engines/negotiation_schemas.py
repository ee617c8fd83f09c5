"""Schema-Guided Reasoning for a negotiation turn: the router's answer (a union of actions, as in
the prototype's ``RouterSchema``: fetch the customer's features to price, or respond; extended
with escalating to a person and accepting the offer on the table) and the pricing answer of a
turn, whose bounds carry the cap and the floor (the offer already made).

Free-text fields are short on purpose: a small model on a CPU writes about eight tokens a second,
so a turn (router, then pricing) stays within seconds. Each schema is sent with
``response_format`` json_schema (strict); xgrammar in vLLM enforces it while generating, and
``parse`` checks the reply against the very schema dict that was sent.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from worker.domain.conversation import LiveOffer, Turn
from worker.domain.model import History
from worker.domain.rules import MESSAGE_MIN_CHARS
from worker.engines.schemas import AnswerInvalid, object_of, parse_json, text_field

ANALYSIS_MAX = 80
REPLY_MAX = 100
REPLY_MIN = MESSAGE_MIN_CHARS


def reply_pattern(min_units: int, max_units: int) -> str:
    """A reply as plain text, by construction: one or more English sentences of ASCII letters,
    spaces, commas, apostrophes, hyphens, ``!`` and ``?``, a full stop only before a space (or at
    the end), and one ``.``, ``!`` or ``?`` that ends it. So no ``<`` or ``>`` (no markup), no
    ``:`` or ``/`` (no URL, no ``javascript:`` or ``data:``), no dot between letters (no bare
    domain such as ``evil.example.com``), no ``@`` (no e-mail address), no digit or ``+`` (no
    phone number), no brackets or parentheses (no markdown link or image), no quote, no
    character outside ASCII (no look-alike, no zero-width character). Character classes, one
    group and bounded repetition only, no lookaround: xgrammar enforces it while generating.
    ``min_units``..``max_units`` count characters, a ``". "`` counting as one, so a reply has
    ``min_units + 2`` to ``2 * max_units + 2`` characters (``REPLY_CHARS_MAX``)."""
    return f"^[A-Z]([A-Za-z ,'!?-]|\\. ){{{min_units},{max_units}}}[.!?]$"


REPLY_PATTERN = reply_pattern(REPLY_MIN - 2, REPLY_MAX - 2)
REPLY_CHARS_MAX = 2 * (REPLY_MAX - 2) + 2  # the most the pattern allows (every unit a ". ")
# The router's actions and the route each one takes (worker.domain.conversation.ROUTES).
ACTIONS = {
    "fetch_customer_features": "price",
    "respond": "respond",
    "escalate_to_person": "escalate",
    "accept_offer": "accept",
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FetchCustomerFeatures(_Strict):
    """The message is about price: fetch the customer's features and go on to pricing."""

    tool: Literal["fetch_customer_features"]


class Respond(_Strict):
    """Not about price: a helpful reply."""

    tool: Literal["respond"]
    reply: str = Field(pattern=REPLY_PATTERN, max_length=REPLY_CHARS_MAX)


class EscalateToPerson(_Strict):
    """A complaint, a legal or safety matter, or a request for a person: hand over."""

    tool: Literal["escalate_to_person"]
    reply: str = Field(pattern=REPLY_PATTERN, max_length=REPLY_CHARS_MAX)


class AcceptOffer(_Strict):
    """The customer takes the offer already made (it is restated, never raised or repeated)."""

    tool: Literal["accept_offer"]
    reply: str = Field(pattern=REPLY_PATTERN, max_length=REPLY_CHARS_MAX)


Action = Annotated[
    FetchCustomerFeatures | Respond | EscalateToPerson | AcceptOffer, Field(discriminator="tool")
]


class RouterAnswer(_Strict):
    """First the analysis of the message, then the one action."""

    analysis: str = Field(max_length=ANALYSIS_MAX)
    action: Action

    @property
    def route(self) -> str:
        return ACTIONS[self.action.tool]

    @property
    def reply(self) -> str:
        return getattr(self.action, "reply", "")


class TurnPricing(_Strict):
    """The price of a turn: the reasoning, the cap restated, the discount, a short reply."""

    customer_analysis: str = Field(max_length=ANALYSIS_MAX)
    negotiation_analysis: str = Field(max_length=ANALYSIS_MAX)
    max_allowed_discount: float = Field(ge=0)
    discount_percent: float = Field(ge=0)
    reply: str = Field(pattern=REPLY_PATTERN, max_length=REPLY_CHARS_MAX)


def reply_field() -> dict[str, Any]:
    """The reply's schema: plain text by construction (``REPLY_PATTERN``). Its length bound is
    inside the pattern: vLLM refuses a ``pattern`` next to ``minLength``/``maxLength`` for
    xgrammar."""
    return {"type": "string", "pattern": REPLY_PATTERN}


def _action(tool: str, with_reply: bool) -> dict[str, Any]:
    props: dict[str, Any] = {"tool": {"type": "string", "enum": [tool]}}
    if with_reply:
        props["reply"] = reply_field()
    return object_of(props)


def router_schema(offer_on_the_table: bool = True) -> dict[str, Any]:
    """The router's answer: an analysis, then one of the actions (``anyOf``, told apart by
    ``tool``); accepting is a choice only when an offer is on the table. Each reply is plain
    text by its pattern (``reply_field``); no ``multipleOf``: vLLM refuses it for xgrammar."""
    branches = [
        _action("fetch_customer_features", False),
        _action("respond", True),
        _action("escalate_to_person", True),
    ]
    if offer_on_the_table:
        branches.append(_action("accept_offer", True))
    return object_of({"analysis": text_field(ANALYSIS_MAX), "action": {"anyOf": branches}})


def pricing_schema(
    cap_pct: float, floor_pct: float | None, min_pct: float, ceiling_pct: float | None = None
) -> dict[str, Any]:
    """The pricing answer of one turn: ``discount_percent`` between the floor (the offer already
    made, or the minimum discount) and this turn's ceiling (``rules.counter_offer``: the step the
    rules allow now; the cap when not given); ``max_allowed_discount`` may only be the cap."""
    top = cap_pct if ceiling_pct is None else min(cap_pct, ceiling_pct)
    low = min(max(min_pct, floor_pct or 0.0), top)
    return object_of(
        {
            "customer_analysis": text_field(ANALYSIS_MAX),
            "negotiation_analysis": text_field(ANALYSIS_MAX),
            "max_allowed_discount": {"type": "number", "minimum": cap_pct, "maximum": cap_pct},
            "discount_percent": {"type": "number", "minimum": low, "maximum": top},
            "reply": reply_field(),
        }
    )


_ROUTER = TypeAdapter(RouterAnswer)


def parse(text: str, schema: dict[str, Any]) -> Any:
    """A reply parsed strictly (no NaN) and checked against the schema that was sent."""
    return parse_json(text, schema)


def parse_router(text: str, schema: dict[str, Any] | None = None) -> RouterAnswer:
    data = parse(text, schema or router_schema())
    try:
        return _ROUTER.validate_python(data)
    except ValidationError as exc:
        raise AnswerInvalid(f"does not fit the router's model: {exc.errors()[0]['msg']}") from None


def parse_pricing(text: str, schema: dict[str, Any]) -> TurnPricing:
    data = parse(text, schema)
    try:
        return TurnPricing.model_validate(data)
    except ValidationError as exc:
        raise AnswerInvalid(f"does not fit the pricing model: {exc.errors()[0]['msg']}") from None


@dataclass(frozen=True)
class TurnRequest:
    """What an engine is asked for one turn: the customer's words, the conversation so far, the
    cart, and (for pricing) the customer's features with the bounds the rules set."""

    event_id: str
    message: str
    turns: tuple[Turn, ...]
    cart_value: float
    currency: str
    margin: float
    inventory: str
    history: History | None
    live_offer: LiveOffer | None
    cap_pct: float = 0.0
    floor_pct: float | None = None
    ceiling_pct: float | None = None  # this turn's most (rules.counter_offer); None: the cap
    min_pct: float = 1.0
    segment: str = ""
    steps: tuple[str, ...] = ()


@dataclass(frozen=True)
class RouteReply:
    answer: RouterAnswer
    engine: str
    model: str | None
    attempts: int = 1


@dataclass(frozen=True)
class PriceReply:
    answer: TurnPricing
    engine: str
    model: str | None
    attempts: int = 1
