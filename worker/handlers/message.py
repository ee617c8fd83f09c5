"""A customer's message (a negotiation turn), as named stages: conversation and facts
(``plan``), route, price or answer (``MessagePlan.ask``), write (``MessagePlan.write``).

The router (an SGR union of actions: price, respond, escalate to a person, accept the offer)
decides whether the message is about price; only then does the pricing step run, with the
customer's features, the cart and the conversation so far. Money safety is the cart path's: the
cap comes from ``rules.cap_for``, it is a bound of the pricing schema, and the rules check the
answer again (``rules.counter_offer_problems``). The customer's live offer (any session) is the
floor; a counter-offer replaces it in the same transaction (its code is voided), is never below
it and never repeats it. At commit, with the customer locked by the runner, the live offer must
be exactly the one the turn was priced against (same offer, not redeemed, not voided meanwhile)
and the rules' gate must still agree; otherwise the turn makes no new code. A turn never voids a
redeemed code. The model's text states no number, percent or code; the system writes the offer
sentence.

Every reply is a turn in the hot store (with its reasoning) and an entry on the result stream
(``type`` "offer" or "reply").
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import structlog

from worker.deps import Deps, JobInfo
from worker.domain import claims, rules
from worker.domain.conversation import Conversation, LiveOffer, Turn
from worker.domain.events import CartEvent
from worker.domain.model import EventContext, Offer, Outcome
from worker.domain.routing import combine, route_by_words
from worker.domain.session import session_row
from worker.engines.base import EngineError
from worker.engines.negotiation_schemas import PriceReply, RouteReply, TurnRequest
from worker.engines.policy import ACCEPT_REPLY, ESCALATE_REPLY, PRICE_REPLY, RESPOND_REPLY
from worker.handlers.base import Written, new_offer, record
from worker.stopwatch import Stopwatch

log = structlog.get_logger("sgr.negotiation")
MAX_TURNS = 20  # turns of the session read per message (the prompts show the newest few)

# Replies when a price question gets no new price (the system's words, by reason).
HOLD_REPLY = "This is the best we can do for you on this cart."
NO_PRICE_REPLY = "We cannot lower the price of this cart right now, but your cart is saved for you."
NO_OPEN_OFFER_REPLY = "There is no open offer right now, but your cart is saved for you."
ACCEPTED_REPLY = "Your offer is waiting for you at checkout."
STANDS_REPLY = "Your offer still stands, and it is waiting for you at checkout."
# The reasons a turn restates the live offer (the system's sentence, its code) and the lead line.
RESTATED = {
    "best_offer_made": HOLD_REPLY,
    "offer_accepted": ACCEPTED_REPLY,
    "offer_stands": STANDS_REPLY,
}
FOREIGN = "session_of_another_user"


@dataclass(frozen=True)
class Priced:
    """What the price (or answer) stage leaves: the offer to commit (or None and why), the reply,
    the pricing answer's reasoning, and every problem found on the way."""

    offer: Offer | None
    reason: str | None
    reply: str
    pricing: PriceReply | None
    cap_pct: float | None
    floor_pct: float | None
    problems: tuple[str, ...] = ()


# --- the stages ------------------------------------------------------------------------------
def turn_request(
    event: CartEvent, ctx: EventContext, convo: Conversation, facts: rules.Facts
) -> TurnRequest:
    assert event.message is not None  # the contract: a customer_message carries a message
    session, live = ctx.session, convo.live_offer
    currency = (
        event.cart.currency
        if event.cart
        else (session.currency if session and session.currency else "EUR")
    )
    return TurnRequest(
        event_id=event.event_id,
        message=event.message,
        turns=convo.turns,
        cart_value=facts.cart_value,
        currency=currency,
        margin=facts.margin,
        inventory=facts.inventory,
        history=facts.history,
        live_offer=live if live is not None and live.usable(facts.now) else None,
    )


def _text_checked(
    text: str, template: str, problems: list[str], facts: claims.ClaimFacts | None = None
) -> str:
    """The model's reply if the message rules and the claims check allow it, else the system's
    template."""
    found = (
        rules.message_problems(text)
        + rules.message_quality_problems(text)
        + claims.claim_problems(text, facts or claims.ClaimFacts(offer_expires=False))
    )
    if not text.strip() or found:
        problems.extend(f"reply_replaced: {p}" for p in found or ["empty"])
        return template
    return text.strip()


def reply_facts(facts: rules.Facts, offer_follows: bool) -> claims.ClaimFacts:
    """What a reply may state: the cart's inventory, whether an offer sentence (with its expiry)
    follows it, whether the customer is new."""
    hist = facts.history
    return claims.ClaimFacts(
        inventory=facts.inventory,
        offer_expires=offer_follows,
        new_customer=hist is None or hist.orders_count <= 0,
    )


def route(deps: Deps, request: TurnRequest) -> tuple[RouteReply, list[str]]:
    """The router's answer: the engine's, backed by the words of the message
    (``routing.route_by_words``: where they decide, they decide; ``accept`` only on words of
    agreement), or the rules engine's when the engine failed."""
    problems: list[str] = []
    if deps.engine is not deps.fallback:
        try:
            routed = deps.engine.route(request)
        except EngineError as exc:
            problems.append(f"route_engine_{exc.kind}: {exc.detail[:200]}")
            log.warning("route_failed", kind=exc.kind, detail=exc.detail[:200])
        else:
            words = route_by_words(request.message, request.live_offer is not None)
            taken = combine(routed.answer.route, words)
            if taken == routed.answer.route:
                return routed, problems
            problems.append(
                f"route_by_words: the model said {routed.answer.route}, the words "
                f"{(words.matched or 'none')[:30]!r} say {taken}"
            )
            return deps.fallback.route(request), problems  # its route is the words'
    return deps.fallback.route(request), problems


def _ask_price(deps: Deps, request: TurnRequest, problems: list[str]) -> PriceReply | None:
    """The engine's counter-offer if the rules pass it, else the fallback's (or None)."""
    if deps.engine is not deps.fallback:
        try:
            reply = deps.engine.price(request)
        except EngineError as exc:
            problems.append(f"engine_{exc.kind}: {exc.detail[:200]}")
            log.warning("price_failed", kind=exc.kind, detail=exc.detail[:200])
        else:
            answer = reply.answer
            found = rules.counter_offer_problems(
                answer.discount_percent,
                answer.max_allowed_discount,
                request.cap_pct,
                request.floor_pct,
                deps.rules,
                request.ceiling_pct,
            )
            if not found:
                return reply
            problems.extend(found)
            log.warning("price_rejected", problems=found)
        if deps.on_invalid_answer != "policy":
            return None
    return deps.fallback.price(request)


def _no_price(
    reason: str,
    live: LiveOffer | None,
    now: datetime,
    cap_pct: float | None,
    floor_pct: float | None,
    problems: list[str] | tuple[str, ...] | None = None,
    pricing: PriceReply | None = None,
) -> Priced:
    """No new price: the live offer restated when it stands (the system's sentence, its code),
    else a plain reply."""
    if live is not None and live.usable(now) and reason in RESTATED:
        lead = RESTATED[reason]
        text = f"{lead}\n{rules.offer_line(live.code, live.discount_pct, live.expires_at)}"
    else:
        text = NO_PRICE_REPLY
    return Priced(None, reason, text, pricing, cap_pct, floor_pct, tuple(problems or ()))


def price(
    deps: Deps, event: CartEvent, facts: rules.Facts, request: TurnRequest, convo: Conversation
) -> Priced:
    """The gate and the cap of the rules, the pricing answer within the cap and above the floor,
    checked again; the counter-offer built with a fresh code, or why none."""
    cfg = deps.rules
    live = convo.live_offer
    now = facts.now
    reason = rules.negotiation_gate(facts, cfg, live, convo.accepted)
    if reason is not None:
        return _no_price(reason, live, now, None, None)
    decision = rules.cap_for(facts, cfg)
    if not decision.allowed:
        return _no_price(decision.reason, live, now, decision.cap_pct, None)
    floor = rules.negotiation_floor(live, now)
    if floor is not None and floor >= decision.cap_pct - 1e-9:
        return _no_price("best_offer_made", live, now, decision.cap_pct, floor)
    ceiling = rules.counter_offer(decision.cap_pct, floor, cfg, convo.price_turns)
    if ceiling is None:  # the rules concede step by step: the offer on the table stands now
        return _no_price("offer_stands", live, now, decision.cap_pct, floor)
    request = replace(
        request,
        cap_pct=decision.cap_pct,
        floor_pct=floor,
        ceiling_pct=ceiling,
        min_pct=cfg.min_discount_pct,
        segment=decision.segment,
        steps=decision.steps,
    )
    problems: list[str] = []
    reply = _ask_price(deps, request, problems)
    if reply is None:
        return _no_price("engine_failed", live, now, decision.cap_pct, floor, problems)
    pricing = reply.answer
    discount = rules.floor_to(pricing.discount_percent, 0.01)
    final = rules.counter_offer_problems(
        discount, pricing.max_allowed_discount, decision.cap_pct, floor, cfg, ceiling
    )
    if final:  # the fallback itself must pass the same rules, or nothing is offered
        return _no_price(
            "guardrail_rejected", live, now, decision.cap_pct, floor, problems + final, reply
        )
    if floor is not None and discount <= floor + 1e-9:  # never the same offer twice
        return _no_price("best_offer_made", live, now, decision.cap_pct, floor, problems, reply)
    body = _text_checked(pricing.reply, PRICE_REPLY, problems, reply_facts(facts, True))
    offer = new_offer(
        deps,
        event,
        facts,
        decision,
        currency=request.currency,
        discount=discount,
        engine=reply.engine,
        model=reply.model,
        reasoning={},  # set with the turn's reasoning in ``write``
        message=lambda code, expires: f"{body}\n{rules.offer_line(code, discount, expires)}",
        problems=tuple(problems),
    )
    return Priced(offer, None, offer.message, reply, decision.cap_pct, floor, tuple(problems))


def answer(
    facts: rules.Facts, convo: Conversation, routed: RouteReply, problems: list[str]
) -> Priced:
    """The reply of a route other than price (the model's text, checked, or the template)."""
    kind = routed.answer.route
    live = convo.live_offer
    if kind == "accept":
        if live is None or not live.usable(facts.now):
            return Priced(None, "no_open_offer", NO_OPEN_OFFER_REPLY, None, None, None)
        body = _text_checked(routed.answer.reply, ACCEPT_REPLY, problems, reply_facts(facts, True))
        line = rules.offer_line(live.code, live.discount_pct, live.expires_at)
        return Priced(None, "accepted", f"{body}\n{line}", None, None, live.discount_pct)
    if kind == "escalate":
        body = _text_checked(
            routed.answer.reply, ESCALATE_REPLY, problems, reply_facts(facts, False)
        )
        return Priced(None, "escalated", body, None, None, None)
    body = _text_checked(routed.answer.reply, RESPOND_REPLY, problems, reply_facts(facts, False))
    return Priced(None, "replied", body, None, None, None)


def reasoning(routed: RouteReply, priced: Priced, supersedes: str | None) -> dict[str, Any]:
    """The turn's audit trail: the router's answer, the pricing answer, the bounds and engines."""
    return {
        "router": routed.answer.model_dump(),
        "pricing": priced.pricing.answer.model_dump() if priced.pricing else None,
        "cap_pct": priced.cap_pct,
        "floor_pct": priced.floor_pct,
        "engines": {
            "route": routed.engine,
            "price": priced.pricing.engine if priced.pricing else None,
        },
        "supersedes": supersedes,
    }


def recheck(
    deps: Deps, event: CartEvent, facts: rules.Facts, convo: Conversation, priced: Priced
) -> tuple[Priced, LiveOffer | None]:
    """At commit, with the customer locked: the customer's live offer read again. A turn that
    would make an offer makes none unless the live offer is exactly the one it was priced against
    (not replaced, redeemed or voided meanwhile) and the rules' gate still agrees. A live offer
    restated (accepted, best offer made) is restated only if it has not changed either."""
    current = deps.hot.live_offer(event.user_id)
    now = facts.now
    if current != convo.live_offer and (
        priced.offer is not None or priced.reason in ("accepted", *RESTATED)
    ):
        return _changed(priced, current, now), current
    if priced.offer is not None:
        observed = replace(facts, last_offer_at=deps.hot.last_offer_at(event.user_id))
        late = rules.negotiation_gate(observed, deps.rules, current, convo.accepted)
        if late is not None:
            problems = priced.problems
            cap, floor = priced.cap_pct, priced.floor_pct
            return _no_price(late, current, now, cap, floor, problems, priced.pricing), current
    return priced, current


def _changed(priced: Priced, current: LiveOffer | None, now: datetime) -> Priced:
    problems, pricing = priced.problems, priced.pricing
    cap, floor = priced.cap_pct, priced.floor_pct
    return _no_price("offer_changed_meanwhile", current, now, cap, floor, problems, pricing)


# --- the plan --------------------------------------------------------------------------------
@dataclass
class MessagePlan:
    """One customer message on its way: the conversation and facts read by ``plan``, routed and
    priced (or answered) by ``ask``, committed by ``write``."""

    event: CartEvent
    facts: rules.Facts
    convo: Conversation
    request: TurnRequest | None
    watch: Stopwatch
    routed: RouteReply | None = None
    priced: Priced | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def needs_engine(self) -> bool:
        return self.request is not None

    def ask(self, deps: Deps) -> None:
        assert self.request is not None
        self.routed, problems = route(deps, self.request)
        self.watch.lap("route")
        if self.routed.answer.route == "price":
            priced = price(deps, self.event, self.facts, self.request, self.convo)
            self.watch.lap("llm")
        else:
            priced = answer(self.facts, self.convo, self.routed, problems)
        self.priced = replace(priced, problems=tuple(problems) + priced.problems)
        self.watch.lap("checks")

    def write(self, deps: Deps, job: JobInfo, watch: Stopwatch) -> Written:
        """One write for the event's state, its outcome, its turn and its offer (which voids the
        live offer it replaces), all or nothing (the runner's transaction)."""
        event, facts = self.event, self.facts
        if self.routed is None or self.priced is None:  # another customer's session: no turn
            notice = record(deps, event, job, watch, None, FOREIGN)
            outcome = Outcome(event.event_id, "no_offer", FOREIGN, timings=watch.ms)
            return Written(outcome, notice=notice)
        deps.hot.apply_event(session_row(event), facts.now)
        priced, current = recheck(deps, event, facts, self.convo, self.priced)
        offer = priced.offer
        supersedes = None
        if offer is not None and current is not None and current.usable(facts.now):
            supersedes = current.offer_id
        trail = reasoning(self.routed, priced, supersedes)
        if offer is not None:
            offer = replace(offer, reasoning=trail)
            priced = replace(priced, offer=offer)
        notice = record(deps, event, job, watch, offer, priced.reason, priced.problems)
        if offer is not None:
            deps.hot.insert_offer(offer)
            if supersedes is not None:
                deps.hot.void_offer(supersedes, offer.offer_id, facts.now)
        assert event.message is not None
        turn = Turn(
            event_id=event.event_id,
            session_id=event.session_id,
            user_id=event.user_id,
            turn=0,
            message=event.message,
            route=self.routed.answer.route,
            reason=priced.reason,
            reply=priced.reply,
            reasoning=trail,
            offer_id=offer.offer_id if offer else None,
            discount_pct=offer.discount_pct if offer else None,
            cap_pct=priced.cap_pct,
            code=offer.code if offer else None,
            engine=(priced.pricing.engine if priced.pricing else self.routed.engine),
            model=(priced.pricing.model if priced.pricing else self.routed.model),
            problems=priced.problems or None,
            created_at=facts.now,
        )
        number = deps.hot.insert_turn(turn)
        assert number is not None  # the outcome was new, so is the turn
        turn = replace(turn, turn=number)
        self.priced = priced
        log.info(
            "negotiation_turn",
            route=turn.route,
            turn=turn.turn,
            reason=turn.reason,
            offer_id=offer.offer_id if offer else None,
            discount_pct=offer.discount_pct if offer else None,
            cap_pct=priced.cap_pct,
            engine=turn.engine,
            problems=list(priced.problems) or None,
        )
        outcome = Outcome(
            event.event_id,
            "offer" if offer else "no_offer",
            None if offer else priced.reason,
            offer.offer_id if offer else None,
            turn.engine,
            guardrail=priced.problems,
            timings=watch.ms,
        )
        return Written(outcome, offer=offer, turn=turn, notice=notice)


def plan(deps: Deps, event: CartEvent, ctx: EventContext, watch: Stopwatch) -> MessagePlan:
    """The conversation so far and the facts; a message into another customer's session gets no
    turn (never answer into another customer's conversation)."""
    facts = rules.facts_for(event, ctx, deps.clock())
    if facts.foreign_session:
        watch.lap("state")
        return MessagePlan(event, facts, Conversation((), None), None, watch)
    convo = deps.hot.conversation(event.session_id, event.user_id, MAX_TURNS)
    facts = replace(facts, history=deps.history.history(event.user_id))
    watch.lap("state")
    return MessagePlan(event, facts, convo, turn_request(event, ctx, convo, facts), watch)
