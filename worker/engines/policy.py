"""The rules engine: the cap (rounded down to a whole percent) and a plain templated message."""

from __future__ import annotations

from worker.domain.rules import RuleConfig, policy_discount
from worker.engines.base import EngineReply, OfferRequest
from worker.engines.schemas import (
    ANALYSIS_MAX,
    SUMMARY_MAX,
    OfferAnswer,
    PricingLogic,
    RouterSchema,
)


class PolicyEngine:
    """The rules alone: the cap (rounded down to a whole percent) and a plain templated message."""

    name = "policy"

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
                summary=f"abandoned cart of {request.cart_value:.2f} {request.currency}"[:SUMMARY_MAX],
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
                customer_message="Your cart is still waiting for you, and we kept a little "
                "thank-you aside for you.",
            ),
        )
        return EngineReply(answer=answer, engine=self.name, model="rules")
