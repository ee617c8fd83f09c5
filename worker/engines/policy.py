"""The rules engine: offers, negotiation routes and counter-offers from the rules, templated text."""

from __future__ import annotations

import re
from typing import Any

from worker.domain.rules import RuleConfig, counter_offer, policy_discount
from worker.engines.base import EngineReply, OfferRequest
from worker.engines.negotiation_schemas import ANALYSIS_MAX as TURN_ANALYSIS_MAX
from worker.engines.negotiation_schemas import (
    AcceptOffer,
    EscalateToPerson,
    FetchCustomerFeatures,
    PriceReply,
    Respond,
    RouterAnswer,
    RouteReply,
    TurnPricing,
    TurnRequest,
)
from worker.engines.schemas import (
    ANALYSIS_MAX,
    SUMMARY_MAX,
    OfferAnswer,
    PricingLogic,
    RouterSchema,
)

# --- negotiation turns (worker/handlers/message.py) ------------------------------------------------
# The rules engine routes by words: a person asked for or a complaint first, then agreement to an
# offer on the table, then anything about price; the rest gets a templated helpful reply.
_ESCALATE = re.compile(
    r"\b(human|person|manager|supervisor|complain\w*|lawyer|legal|sue|fraud|scam|speak to|talk to)\b",
    re.IGNORECASE,
)
_ACCEPT = re.compile(
    r"\b(i accept|accepted|deal!?$|it'?s a deal|i'?ll take it|sounds good|ok(ay)?,? (deal|thanks))",
    re.IGNORECASE,
)
_PRICE = re.compile(
    r"\b(discount\w*|price\w*|pric(ey|y)|cheap\w*|expensive|cost\w*|deal|offer\w*|coupon\w*|"
    r"codes?|vouchers?|promo\w*|percent|sale|money|afford\w*|budget|leav\w*|cancel\w*|competitor\w*|"
    r"better|lower|reduc\w*|off|rabatt|promised?)\b|%",
    re.IGNORECASE,
)
RESPOND_REPLY = (
    "Thanks for your message! Your cart is saved, and our help pages cover delivery, returns "
    "and sizes."
)
ESCALATE_REPLY = "I am sorry about this. A colleague will get in touch with you shortly."
ACCEPT_REPLY = "Wonderful, thank you! Your offer is ready for you at checkout."
PRICE_REPLY = "Thanks for asking. Here is what we can do for you."  # true of new customers too


def policy_route(message: str, offer_on_the_table: bool) -> str:
    """The route the rules engine takes for a message (one of ``conversation.ROUTES``)."""
    if _ESCALATE.search(message):
        return "escalate"
    if offer_on_the_table and _ACCEPT.search(message.strip()):
        return "accept"
    if _PRICE.search(message):
        return "price"
    return "respond"


class PolicyEngine:
    """The rules alone: offers, negotiation routes and counter-offers from the rules, with plain
    templated messages. The fallback of every other engine."""

    name = "policy"
    model: str | None = "rules"

    def __init__(self, rules: RuleConfig) -> None:
        self.rules = rules

    def propose(self, request: OfferRequest) -> EngineReply:
        discount = policy_discount(request.decision, self.rules)
        hist = request.history
        churn = (
            "no history: new customer" if hist is None else f"churn {hist.churn_probability:.2f}"
        )
        answer = OfferAnswer(
            routing=RouterSchema(
                intent="price_sensitive" if request.customer_message else "hesitant",
                tone="friendly",
                summary=f"abandoned cart of {request.cart_value:.2f} {request.currency}"[
                    :SUMMARY_MAX
                ],
            ),
            pricing=PricingLogic(
                churn_analysis=f"{churn}; segment {request.segment}"[:ANALYSIS_MAX],
                financial_analysis=(
                    f"cart {request.cart_value:.2f} {request.currency}"
                    + ("" if hist is None else f", lifetime value {hist.lifetime_value:.2f}")
                )[:ANALYSIS_MAX],
                margin_math="; ".join(request.steps)[:ANALYSIS_MAX],
                max_allowed_discount=request.cap_pct,
                discount_percent=discount,
                customer_message="Your cart is still waiting for you, and we kept a little thank "
                "you aside for you.",
            ),
        )
        return EngineReply(answer=answer, engine=self.name, model="rules")

    def route(self, request: TurnRequest) -> RouteReply:
        route = policy_route(request.message, request.live_offer is not None)
        action: Any
        if route == "price":
            action = FetchCustomerFeatures(tool="fetch_customer_features")
        elif route == "escalate":
            action = EscalateToPerson(tool="escalate_to_person", reply=ESCALATE_REPLY)
        elif route == "accept":
            action = AcceptOffer(tool="accept_offer", reply=ACCEPT_REPLY)
        else:
            action = Respond(tool="respond", reply=RESPOND_REPLY)
        analysis = f"rules engine: words of the message route it to {route}"
        return RouteReply(RouterAnswer(analysis=analysis, action=action), self.name, "rules")

    def price(self, request: TurnRequest) -> PriceReply:
        """The rules' counter-offer; at the floor when nothing better may be offered."""
        discount = counter_offer(request.cap_pct, request.floor_pct, self.rules)
        if discount is None:  # the live offer is at the cap already: it stands (never the cap
            # by default: without a floor, counter_offer always opens at a share of the cap)
            assert request.floor_pct is not None
            discount = request.floor_pct
        hist = request.history
        answer = TurnPricing(
            customer_analysis=(
                "no history: new customer"
                if hist is None
                else f"churn {hist.churn_probability:.2f}, LTV {hist.lifetime_value:.0f}"
            )[:TURN_ANALYSIS_MAX],
            negotiation_analysis=(
                f"segment {request.segment}; cap {request.cap_pct:g}; "
                f"prior {'none' if request.floor_pct is None else f'{request.floor_pct:g}'}"
            )[:TURN_ANALYSIS_MAX],
            max_allowed_discount=request.cap_pct,
            discount_percent=discount,
            reply=PRICE_REPLY,
        )
        return PriceReply(answer, self.name, "rules")
