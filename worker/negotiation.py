"""A customer's message, start to end, as named stages: context (with the conversation's turns),
route, price, check, commit, publish. ``worker.pipeline.process`` hands every
``customer_message`` event here; ``process_message`` reads as the flow.

The router (an SGR union of actions: price, respond, escalate to a person, accept the offer)
decides whether the message is about price; only then does the pricing step run, with the
customer's features, the cart and the conversation so far. Money safety is the abandonment
pipeline's: the cap comes from ``rules.cap_for``, it is a bound of the pricing schema, and the
rules check the answer again (``rules.counter_offer_problems``). The customer's live offer (any
session: an abandonment offer or an earlier counter-offer) is the floor; a counter-offer replaces
it in the same transaction (its code is voided), is never below it and never repeats it. The
model's text states no number, percent or code; the system writes the offer sentence.

Every event ends in one recorded outcome; every reply is a turn in the hot store (with its
reasoning) and an entry on the result stream (``type`` "offer" or "reply").
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Protocol, TypeVar, runtime_checkable

import structlog

from stores.base import HotStore
from stores.history import HistorySource
from worker.domain import rules
from worker.domain.codes import new_offer_id
from worker.domain.conversation import Conversation, LiveOffer, Turn
from worker.domain.events import CartEvent
from worker.domain.model import EventContext, Offer, Outcome
from worker.domain.session import session_row
from worker.engines.base import Engine, EngineError
from worker.engines.negotiation_prompts import pricing_messages, router_messages
from worker.engines.negotiation_schemas import (
    PriceReply,
    RouteReply,
    TurnRequest,
    parse_pricing,
    parse_router,
    pricing_schema,
    router_schema,
)
from worker.engines.policy import (
    ACCEPT_REPLY,
    ESCALATE_REPLY,
    PRICE_REPLY,
    RESPOND_REPLY,
    PolicyNegotiator,
)
from worker.outbox import Outbox
from worker.stopwatch import Stopwatch

log = structlog.get_logger("sgr.negotiation")
T = TypeVar("T")
MAX_TURNS = 20  # turns of the session read per message (the prompts show the newest few)

# Replies when a price question gets no new price (the system's words, by reason).
HOLD_REPLY = "This is the best we can do for you on this cart."
NO_PRICE_REPLY = "We cannot lower the price of this cart right now, but your cart is saved for you."
NO_OPEN_OFFER_REPLY = "There is no open offer right now, but your cart is saved for you."
ACCEPTED_REPLY = "Your offer is waiting for you at checkout."


class TurnDeps(Protocol):
    """What a turn needs of ``worker.pipeline.Deps`` (which it is given)."""

    @property
    def hot(self) -> HotStore: ...
    @property
    def history(self) -> HistorySource: ...
    @property
    def engine(self) -> Engine: ...
    @property
    def outbox(self) -> Outbox: ...
    @property
    def rules(self) -> rules.RuleConfig: ...
    @property
    def clock(self) -> Callable[[], datetime]: ...
    @property
    def offer_ttl(self) -> timedelta: ...
    @property
    def on_invalid_answer(self) -> str: ...
    @property
    def new_code(self) -> Callable[[], str]: ...


class JobLike(Protocol):
    """What a turn needs of ``worker.pipeline.JobInfo``."""

    @property
    def attempt(self) -> int: ...
    @property
    def enqueued_at(self) -> datetime | None: ...
    @property
    def started_at(self) -> datetime | None: ...


@runtime_checkable
class AsksJson(Protocol):
    """An engine that can be asked for any schema-constrained JSON (``VllmEngine.ask_json``)."""

    name: str
    model: str | None

    def ask_json(
        self,
        messages: list[dict[str, str]],
        schema: dict[str, Any],
        parse: Callable[[str], T],
        *,
        name: str,
        seed_key: str,
    ) -> tuple[T, int]: ...


@dataclass(frozen=True)
class NoJob:
    attempt: int = 1
    enqueued_at: datetime | None = None
    started_at: datetime | None = None


@dataclass(frozen=True)
class Priced:
    """What the price stage leaves: the offer to commit (or None and why), the reply, the
    pricing answer's reasoning, and every problem found on the way."""

    offer: Offer | None
    reason: str | None
    reply: str
    pricing: PriceReply | None
    cap_pct: float | None
    floor_pct: float | None
    problems: tuple[str, ...] = ()


@dataclass(frozen=True)
class TurnResult:
    """A turn as ``sgr negotiate`` shows it: the outcome, the recorded turn, the offer made."""

    outcome: Outcome
    turn: Turn | None
    offer: Offer | None
    route_engine: str | None = None
    price_engine: str | None = None


# --- the stages ------------------------------------------------------------------------------
def context(deps: TurnDeps, event: CartEvent) -> tuple[EventContext, Conversation]:
    """Stage 1: what the hot store knows: the event's outcome if recorded, the session, the
    session's turns and the customer's live offer."""
    ctx = deps.hot.event_context(event.event_id, event.session_id, event.user_id)
    convo = deps.hot.conversation(event.session_id, event.user_id, MAX_TURNS)
    return ctx, convo


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


def _text_checked(text: str, template: str, problems: list[str]) -> str:
    """The model's reply if the message rules allow it, else the system's template."""
    found = rules.message_problems(text) + rules.message_quality_problems(text)
    if not text.strip() or found:
        problems.extend(f"reply_replaced: {p}" for p in found or ["empty"])
        return template
    return text.strip()


def route(deps: TurnDeps, request: TurnRequest) -> tuple[RouteReply, list[str]]:
    """Stage 2: the router's answer (the LLM's, or the rules engine's when there is no LLM or
    its answer failed)."""
    problems: list[str] = []
    engine = deps.engine
    if isinstance(engine, AsksJson):
        schema = router_schema(offer_on_the_table=request.live_offer is not None)
        try:
            answer, attempts = engine.ask_json(
                router_messages(request),
                schema,
                lambda text: parse_router(text, schema),
                name="sgr_route",
                seed_key=f"{request.event_id}#route",
            )
            return RouteReply(answer, engine.name, engine.model, attempts), problems
        except EngineError as exc:
            problems.append(f"route_engine_{exc.kind}: {exc.detail[:200]}")
            log.warning("route_failed", kind=exc.kind, detail=exc.detail[:200])
    return PolicyNegotiator(deps.rules).route(request), problems


def price(
    deps: TurnDeps,
    event: CartEvent,
    facts: rules.Facts,
    request: TurnRequest,
    convo: Conversation,
) -> Priced:
    """Stage 3 and 4: the gate and the cap of the rules, the pricing answer within the cap and
    above the floor, checked again; the counter-offer built with a fresh code, or why none."""
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
    request = replace(
        request,
        cap_pct=decision.cap_pct,
        floor_pct=floor,
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
        discount, pricing.max_allowed_discount, decision.cap_pct, floor, cfg
    )
    if final:  # the fallback itself must pass the same rules, or nothing is offered
        return _no_price(
            "guardrail_rejected", live, now, decision.cap_pct, floor, problems + final, reply
        )
    if floor is not None and discount <= floor + 1e-9:  # never the same offer twice
        return _no_price("best_offer_made", live, now, decision.cap_pct, floor, problems, reply)
    body = _text_checked(pricing.reply, PRICE_REPLY, problems)
    expires = now + deps.offer_ttl
    code = deps.new_code()
    offer = Offer(
        offer_id=new_offer_id(),
        event_id=event.event_id,
        session_id=event.session_id,
        user_id=event.user_id,
        currency=request.currency,
        cart_value=facts.cart_value,
        margin=facts.margin,
        segment=decision.segment,
        cap_pct=decision.cap_pct,
        discount_pct=discount,
        code=code,
        expires_at=expires,
        engine=reply.engine,
        model=reply.model,
        reasoning={},  # set with the turn's reasoning in ``process_message``
        message=f"{body}\n{rules.offer_line(code, discount, expires)}",
        guardrail=tuple(problems) or None,
        created_at=now,
    )
    return Priced(offer, None, offer.message, reply, decision.cap_pct, floor, tuple(problems))


def _ask_price(deps: TurnDeps, request: TurnRequest, problems: list[str]) -> PriceReply | None:
    engine = deps.engine
    policy = PolicyNegotiator(deps.rules)
    if isinstance(engine, AsksJson):
        schema = pricing_schema(request.cap_pct, request.floor_pct, request.min_pct)
        try:
            answer, attempts = engine.ask_json(
                pricing_messages(request),
                schema,
                lambda text: parse_pricing(text, schema),
                name="sgr_turn_price",
                seed_key=f"{request.event_id}#price",
            )
        except EngineError as exc:
            problems.append(f"engine_{exc.kind}: {exc.detail[:200]}")
            log.warning("price_failed", kind=exc.kind, detail=exc.detail[:200])
        else:
            found = rules.counter_offer_problems(
                answer.discount_percent,
                answer.max_allowed_discount,
                request.cap_pct,
                request.floor_pct,
                deps.rules,
            )
            if not found:
                return PriceReply(answer, engine.name, engine.model, attempts)
            problems.extend(found)
            log.warning("price_rejected", problems=found)
        if deps.on_invalid_answer != "policy":
            return None
    return policy.price(request)


def _no_price(
    reason: str,
    live: LiveOffer | None,
    now: datetime,
    cap_pct: float | None,
    floor_pct: float | None,
    problems: list[str] | None = None,
    pricing: PriceReply | None = None,
) -> Priced:
    """No new price: the live offer restated when it stands (the system's sentence, its code),
    else a plain reply."""
    if live is not None and live.usable(now) and reason in ("best_offer_made", "offer_accepted"):
        lead = HOLD_REPLY if reason == "best_offer_made" else ACCEPTED_REPLY
        text = f"{lead}\n{rules.offer_line(live.code, live.discount_pct, live.expires_at)}"
    else:
        text = NO_PRICE_REPLY
    return Priced(None, reason, text, pricing, cap_pct, floor_pct, tuple(problems or ()))


def answer(
    deps: TurnDeps,
    event: CartEvent,
    facts: rules.Facts,
    request: TurnRequest,
    convo: Conversation,
    routed: RouteReply,
    problems: list[str],
) -> Priced:
    """The reply of a route other than price (the model's text, checked, or the template)."""
    kind = routed.answer.route
    live = convo.live_offer
    if kind == "accept":
        if live is None or not live.usable(facts.now):
            return Priced(None, "no_open_offer", NO_OPEN_OFFER_REPLY, None, None, None)
        body = _text_checked(routed.answer.reply, ACCEPT_REPLY, problems)
        line = rules.offer_line(live.code, live.discount_pct, live.expires_at)
        return Priced(None, "accepted", f"{body}\n{line}", None, None, live.discount_pct)
    if kind == "escalate":
        body = _text_checked(routed.answer.reply, ESCALATE_REPLY, problems)
        return Priced(None, "escalated", body, None, None, None)
    body = _text_checked(routed.answer.reply, RESPOND_REPLY, problems)
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


def commit(
    deps: TurnDeps,
    event: CartEvent,
    facts: rules.Facts,
    routed: RouteReply,
    priced: Priced,
    live: LiveOffer | None,
    job: JobLike,
    laps: Stopwatch,
) -> tuple[bool, Turn | None, Priced]:
    """Stage 5: one write transaction for the event's state, its outcome, its turn and its offer
    (which voids the live offer it replaces), all or nothing. The floor is read again in the
    transaction: another worker may have made this customer an offer meanwhile."""
    now = facts.now
    with deps.hot.transaction():
        deps.hot.apply_event(session_row(event), now)
        offer = priced.offer
        current = deps.hot.live_offer(event.user_id)
        if offer is not None and _key(current) != _key(live):
            floor = rules.negotiation_floor(current, now)
            late = rules.counter_offer_problems(
                offer.discount_pct, offer.cap_pct, offer.cap_pct, floor, deps.rules
            )
            if late or (floor is not None and offer.discount_pct <= floor + 1e-9):
                priced = _no_price(
                    "offer_changed_meanwhile",
                    current,
                    now,
                    priced.cap_pct,
                    floor,
                    [*priced.problems, *late],
                    priced.pricing,
                )
                offer = None
        supersedes = current.offer_id if offer is not None and current is not None else None
        trail = reasoning(routed, priced, supersedes)
        if offer is not None:
            offer = replace(offer, reasoning=trail)
            priced = replace(priced, offer=offer)
        recorded = deps.hot.record_outcome(
            event_id=event.event_id,
            session_id=event.session_id,
            user_id=event.user_id,
            type=event.type.value,
            outcome="offer" if offer else "no_offer",
            reason=None if offer else priced.reason,
            offer_id=offer.offer_id if offer else None,
            error="; ".join(priced.problems) or None,
            attempts=job.attempt,
            occurred_at=event.occurred_at,
            enqueued_at=job.enqueued_at,
            started_at=job.started_at,
            finished_at=deps.clock(),
            timings=laps.ms,
        )
        if not recorded:
            return False, None, priced
        if offer is not None:
            deps.hot.insert_offer(offer)
            if supersedes is not None:
                deps.hot.void_offer(supersedes, offer.offer_id, now)
        assert event.message is not None
        turn = Turn(
            event_id=event.event_id,
            session_id=event.session_id,
            user_id=event.user_id,
            turn=0,
            message=event.message,
            route=routed.answer.route,
            reason=priced.reason,
            reply=priced.reply,
            reasoning=trail,
            offer_id=offer.offer_id if offer else None,
            discount_pct=offer.discount_pct if offer else None,
            cap_pct=priced.cap_pct,
            code=offer.code if offer else None,
            engine=(priced.pricing.engine if priced.pricing else routed.engine),
            model=(priced.pricing.model if priced.pricing else routed.model),
            problems=priced.problems or None,
            created_at=now,
        )
        number = deps.hot.insert_turn(turn)
        assert number is not None  # the outcome was new, so is the turn
    return True, replace(turn, turn=number), priced


def _key(live: LiveOffer | None) -> str | None:
    return live.offer_id if live is not None else None


def publish(deps: TurnDeps, turn: Turn) -> None:
    """Stage 6: the turn onto the result stream through the outbox: its offer, or its reply."""
    deps.outbox.publish_turn(turn)


# --- the flow --------------------------------------------------------------------------------
def replayed(deps: TurnDeps, event: CartEvent, ctx: EventContext) -> TurnResult:
    prior = ctx.outcome
    assert prior is not None
    deps.outbox.publish_pending(prior.offer_id)
    deps.outbox.publish_pending_turn(event.event_id)
    outcome = Outcome(event.event_id, prior.outcome, prior.reason, prior.offer_id, replayed=True)
    offer = deps.hot.get_offer(prior.offer_id) if prior.offer_id else None
    return TurnResult(outcome, deps.hot.get_turn(event.event_id), offer)


def run_turn(event: CartEvent, deps: TurnDeps, job: JobLike | None = None) -> TurnResult:
    """One customer message to its one outcome, turn and reply (idempotent by ``event_id``)."""
    job = job or NoJob()
    laps = Stopwatch()
    ctx, convo = context(deps, event)
    if ctx.outcome is not None:
        log.info("event_replayed", outcome=ctx.outcome.outcome, reason=ctx.outcome.reason)
        return replayed(deps, event, ctx)
    facts = rules.facts_for(event, ctx, deps.clock())
    if facts.foreign_session:  # never answer into another customer's conversation
        recorded = deps.hot.record_outcome(
            event_id=event.event_id,
            session_id=event.session_id,
            user_id=event.user_id,
            type=event.type.value,
            outcome="no_offer",
            reason="session_of_another_user",
            attempts=job.attempt,
            occurred_at=event.occurred_at,
            finished_at=deps.clock(),
        )
        if not recorded:
            return replayed(deps, event, deps.hot.event_context(event.event_id, "", ""))
        return TurnResult(
            Outcome(event.event_id, "no_offer", "session_of_another_user"), None, None
        )
    facts = replace(facts, history=deps.history.history(event.user_id))
    request = turn_request(event, ctx, convo, facts)
    laps.lap("state")

    routed, problems = route(deps, request)
    laps.lap("route")
    if routed.answer.route == "price":
        priced = price(deps, event, facts, request, convo)
        priced = replace(priced, problems=tuple(problems) + priced.problems)
        laps.lap("llm")
    else:
        priced = answer(deps, event, facts, request, convo, routed, problems)
        priced = replace(priced, problems=tuple(problems) + priced.problems)
    laps.lap("checks")

    recorded, turn, priced = commit(deps, event, facts, routed, priced, convo.live_offer, job, laps)
    if not recorded or turn is None:
        return replayed(deps, event, deps.hot.event_context(event.event_id, "", ""))
    publish(deps, turn)
    laps.lap("publish")
    offer = priced.offer
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
        timings=laps.ms,
    )
    return TurnResult(
        outcome,
        turn,
        offer,
        routed.engine,
        priced.pricing.engine if priced.pricing else None,
    )


def process_message(event: CartEvent, deps: TurnDeps, job: JobLike | None = None) -> Outcome:
    """``worker.pipeline.process`` for a ``customer_message`` event."""
    return run_turn(event, deps, job).outcome
