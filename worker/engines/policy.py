"""The rules engine: offers, negotiation routes and counter-offers from the rules, templated text."""

from __future__ import annotations

from typing import Any, Literal, cast

from worker.domain.copy import CartFacts, pick, preferred_tone
from worker.domain.routing import route_by_words
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

Tone = Literal["friendly", "reassuring", "urgent"]  # schemas.TONES, as RouterSchema types it

# --- negotiation turns (worker/handlers/message.py) ------------------------------------------------
# The rules engine routes by words (``worker/domain/routing.py``, per language): a person asked for
# or a complaint first, then agreement to an offer on the table, then anything about price, then a
# question about an order; the rest gets a templated helpful reply.
RESPOND_REPLY = (
    "Thanks for your message! Your cart is saved, and our help pages cover delivery, returns "
    "and sizes."
)
ESCALATE_REPLY = "I am sorry about this. A colleague will get in touch with you shortly."
ACCEPT_REPLY = "Wonderful, thank you! Your offer is ready for you at checkout."
PRICE_REPLY = "Thanks for asking. Here is what we can do for you."  # true of new customers too
# The offer's sentence when a request carries no approved copy (a catalogue always has some).
FALLBACK_SENTENCE = "Your cart is saved and waiting for you whenever you are ready."


def policy_route(message: str, offer_on_the_table: bool) -> str:
    """The route the rules engine takes for a message (one of ``conversation.ROUTES``)."""
    return route_by_words(message, offer_on_the_table).route or "respond"


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
        # The same approved copy the model chooses from (worker/domain/copy.py), in the tone the
        # cart calls for; the same sentence for the same event.
        tone = preferred_tone(
            CartFacts(request.segment, request.inventory, hist.orders_count if hist else 0)
        )
        entry = pick(request.copy, tone, request.event_id)
        churn = (
            "no history: new customer" if hist is None else f"churn {hist.churn_probability:.2f}"
        )
        answer = OfferAnswer(
            routing=RouterSchema(
                intent="price_sensitive" if request.customer_message else "hesitant",
                tone=cast(Tone, entry.tone if entry is not None else "friendly"),
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
                customer_message=entry.text if entry is not None else FALLBACK_SENTENCE,
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
        discount = request.ceiling_pct  # the most the rules allow this turn (message.price)
        if discount is None:
            discount = counter_offer(request.cap_pct, request.floor_pct, self.rules)
        if discount is None:  # nothing above the live offer is allowed now: it stands
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
