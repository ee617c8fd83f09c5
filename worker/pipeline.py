"""One cart event, start to end: state, history, rules, engine, check, commit, publish.

``process`` sees the stores, the engines, the publisher and the clock only through ``Deps``, so a
test can hand it real ones on temporary files. Every event ends in exactly one recorded outcome.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

import structlog

from stores.history import HistorySource
from stores.hot import SESSION_STATUS, HotStore, SessionState
from stores.timefmt import to_text
from worker import rules
from worker.codes import CodeSigner, new_offer_id
from worker.engines import Engine, EngineError, EngineReply, OfferRequest
from worker.events import CartEvent
from worker.publish import Publisher
from worker.schemas import offer_schema

log = structlog.get_logger("sgr.pipeline")


@dataclass(frozen=True)
class Deps:
    """A process's collaborators, wired once in ``jobs.py`` (or by a test)."""

    hot: HotStore
    history: HistorySource
    engine: Engine
    fallback: Engine
    publisher: Publisher
    codes: CodeSigner
    rules: rules.RuleConfig
    clock: Callable[[], datetime]
    offer_ttl: timedelta = timedelta(hours=48)
    on_invalid_answer: str = "policy"


@dataclass(frozen=True)
class JobInfo:
    """What RQ knows about the job carrying the event (absent when called directly)."""

    job_id: str | None = None
    enqueued_at: datetime | None = None
    started_at: datetime | None = None
    attempt: int = 1


@dataclass(frozen=True)
class Outcome:
    event_id: str
    outcome: str  # "offer" | "no_offer" | "dead_letter"
    reason: str | None = None
    offer_id: str | None = None
    engine: str | None = None
    replayed: bool = False
    guardrail: tuple[str, ...] = ()
    timings: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id,
            "outcome": self.outcome,
            "reason": self.reason,
            "offer_id": self.offer_id,
            "engine": self.engine,
            "replayed": self.replayed,
            "guardrail": list(self.guardrail),
            "timings": self.timings,
        }


class _Stopwatch:
    def __init__(self) -> None:
        self.last = time.perf_counter()
        self.ms: dict[str, float] = {}

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        self.ms[stage] = round(self.ms.get(stage, 0.0) + (now - self.last) * 1000, 3)
        self.last = now


def publish_committed(deps: Deps, offer: dict[str, Any]) -> None:
    """The outbox step: put a committed offer on the stream (once per offer id, however often it
    is called), then mark it published in the hot store."""
    deps.publisher.publish(offer)
    deps.hot.mark_published(offer["offer_id"], deps.clock())


def publish_pending(deps: Deps, offer_id: str | None) -> bool:
    """Publish a committed offer if it is not yet marked published."""
    if offer_id is None:
        return False
    offer = deps.hot.get_offer(offer_id)
    if offer is None or offer["published_at"] is not None:
        return False
    publish_committed(deps, offer)
    return True


def flush_outbox(deps: Deps, limit: int = 1000) -> int:
    """Publish every committed offer still waiting (after a crash); returns how many."""
    pending = deps.hot.unpublished_offers(limit)
    for offer in pending:
        publish_committed(deps, offer)
    return len(pending)


def republish_lost(deps: Deps, since: datetime) -> int:
    """Publish again the offers published since ``since`` that Redis has lost (a crash between
    AOF fsyncs); returns how many. The stream keeps one entry per offer: publish() checks first."""
    recent = {o["offer_id"]: o for o in deps.hot.recently_published(since)}
    lost = deps.publisher.missing(list(recent)) if recent else []
    for offer_id in lost:
        deps.publisher.publish(recent[offer_id])
    if lost:
        log.warning("offers_republished", offers=len(lost))
    return len(lost)


def state_params(event: CartEvent) -> dict[str, Any]:
    cart = event.cart
    return {
        "session_id": event.session_id,
        "user_id": event.user_id,
        "status": SESSION_STATUS[event.type.value],
        "cart_value": cart.total if cart else None,
        "margin": cart.margin_fraction if cart else None,
        "currency": cart.currency if cart else None,
        "inventory": event.inventory if cart else None,
        "event_id": event.event_id,
        "occurred_at": to_text(event.occurred_at),
    }


def session_after(event: CartEvent, before: SessionState | None) -> tuple[str, bool]:
    """The session's status once ``event`` is applied, and whether the event is stale (not newer
    than the state), decided as ``sql/hot/upsert_session.sql`` will decide them on commit."""
    status = SESSION_STATUS[event.type.value]
    if before is None:
        return status or "active", False
    if (event.occurred_at, event.event_id) <= (before.last_event_at, before.last_event_id):
        return before.status, True
    if before.status == "ordered":
        return "ordered", False
    return status or before.status, False


def offer_request(
    event: CartEvent, facts: rules.Facts, decision: rules.Decision, config: rules.RuleConfig
) -> OfferRequest:
    """What the engine is asked for an allowed offer; its schema bounds the discount by the cap."""
    assert event.cart is not None  # only cart_abandoned passes the gate, and it carries a cart
    return OfferRequest(
        event_id=event.event_id,
        cart_value=facts.cart_value,
        currency=event.cart.currency,
        margin=facts.margin,
        inventory=facts.inventory,
        history=facts.history,
        customer_message=event.message,
        decision=decision,
        min_pct=config.min_discount_pct,
        schema=offer_schema(decision.cap_pct, config.min_discount_pct),
    )


def _ask(deps: Deps, request: OfferRequest) -> tuple[EngineReply | None, list[str]]:
    """The engine's answer checked by the rules; on failure the configured fallback or None."""
    problems: list[str] = []
    try:
        reply = deps.engine.propose(request)
        pricing = reply.answer.pricing
        problems = rules.check_answer(
            pricing.discount_percent,
            pricing.max_allowed_discount,
            pricing.customer_message,
            request.cap_pct,
            deps.rules,
        )
        if not problems:
            return reply, []
        log.warning("answer_rejected", engine=reply.engine, problems=problems)
    except EngineError as exc:
        problems = [f"engine_{exc.kind}: {exc.detail[:300]}"]
        log.warning("engine_failed", kind=exc.kind, attempts=exc.attempts, detail=exc.detail[:300])
    if deps.on_invalid_answer == "policy" and deps.fallback is not deps.engine:
        return deps.fallback.propose(request), problems
    return None, problems


def _final_message(body: str, code: str, discount: float, expires: datetime) -> str:
    body = body.strip()
    line = f"Use code {code} for {discount:g}% off until {expires:%Y-%m-%d %H:%M} UTC."
    return f"{body}\n{line}" if body else line


def process(event: CartEvent, deps: Deps, job: JobInfo | None = None) -> Outcome:
    """Turn one validated event into its one outcome (idempotent by ``event_id``)."""
    job = job or JobInfo()
    watch = _Stopwatch()
    context = deps.hot.event_context(event.event_id, event.session_id, event.user_id)
    prior = context.outcome
    if prior is not None:
        publish_pending(deps, prior.offer_id)
        log.info("event_replayed", outcome=prior.outcome, reason=prior.reason)
        return Outcome(event.event_id, prior.outcome, prior.reason, prior.offer_id, replayed=True)

    now = deps.clock()
    before = context.session
    status, stale = session_after(event, before)
    cart = event.cart
    facts = rules.Facts(
        event_type=event.type,
        cart_value=cart.total if cart else ((before and before.cart_value) or 0.0),
        margin=cart.margin_fraction if cart else ((before and before.margin) or 0.0),
        inventory=event.inventory if cart else ((before and before.inventory) or "in_stock"),
        session_status=status,
        stale=stale,
        history=None,
        last_offer_at=context.last_offer_at,
        now=now,
    )
    watch.lap("state")

    reply: EngineReply | None = None
    problems: list[str] = []
    reason = rules.gate(facts, deps.rules)
    decision = rules.Decision(False, reason or "")
    if reason is None:
        facts = replace(facts, history=deps.history.history(event.user_id))
        watch.lap("history")
        decision = rules.cap_for(facts, deps.rules)
        if decision.allowed:
            request = offer_request(event, facts, decision, deps.rules)
            reply, problems = _ask(deps, request)
            watch.lap("llm")
        else:
            reason = decision.reason

    offer: dict[str, Any] | None = None
    if reply is not None:
        pricing = reply.answer.pricing
        discount = rules.floor_to(pricing.discount_percent, 0.01)
        final_check = rules.check_answer(
            discount, pricing.max_allowed_discount, "", decision.cap_pct, deps.rules
        )
        if final_check:  # the fallback itself must pass the same rules, or nothing is sent
            problems += final_check
            reply = None
            reason = "guardrail_rejected"
        else:
            offer_id = new_offer_id()
            expires = now + deps.offer_ttl
            code = deps.codes.issue(offer_id, expires, discount)
            offer = {
                "offer_id": offer_id,
                "event_id": event.event_id,
                "session_id": event.session_id,
                "user_id": event.user_id,
                "currency": request.currency,
                "cart_value": facts.cart_value,
                "margin": facts.margin,
                "segment": decision.segment,
                "cap_pct": decision.cap_pct,
                "discount_pct": discount,
                "code": code,
                "expires_at": expires,
                "engine": reply.engine,
                "model": reply.model,
                "reasoning": reply.answer.model_dump(),
                "message": _final_message(pricing.customer_message, code, discount, expires),
                "guardrail": problems or None,
                "created_at": now,
            }
    elif reason is None:
        reason = "engine_failed"
    watch.lap("checks")

    # One write transaction: the event's state, its outcome and its offer, all or nothing.
    with deps.hot.transaction():
        applied = deps.hot.apply_event(state_params(event), now)
        observed = replace(
            facts,
            stale=applied is None,
            session_status=applied.status if applied else facts.session_status,
        )
        if offer is not None or observed != facts:
            # Other workers may have applied a newer event of this session or made this customer
            # an offer since the state was read: ask the rules again, on what is now committed.
            if offer is not None:
                observed = replace(observed, last_offer_at=deps.hot.last_offer_at(event.user_id))
            late_reason = rules.gate(observed, deps.rules)
            if late_reason is not None:
                offer, reason = None, late_reason
        # The event's one outcome; not recorded if another run of it got there first (raced).
        recorded = deps.hot.record_outcome(
            event_id=event.event_id,
            session_id=event.session_id,
            user_id=event.user_id,
            type=event.type.value,
            outcome="offer" if offer else "no_offer",
            reason=None if offer else reason,
            offer_id=offer["offer_id"] if offer else None,
            error="; ".join(problems) or None,
            attempts=job.attempt,
            occurred_at=event.occurred_at,
            enqueued_at=job.enqueued_at,
            started_at=job.started_at,
            finished_at=deps.clock(),
            timings=watch.ms,
        )
        if recorded and offer is not None:
            deps.hot.insert_offer(offer)
    if not recorded:
        raced = deps.hot.get_outcome(event.event_id)
        assert raced is not None
        publish_pending(deps, raced.offer_id)
        return Outcome(event.event_id, raced.outcome, raced.reason, raced.offer_id, replayed=True)

    if offer is not None:
        publish_committed(deps, offer)  # from memory: no need to read back what was just written
        watch.lap("publish")
        log.info(
            "offer_made",
            offer_id=offer["offer_id"],
            discount_pct=offer["discount_pct"],
            cap_pct=offer["cap_pct"],
            engine=offer["engine"],
            guardrail=problems or None,
        )
        return Outcome(
            event.event_id,
            "offer",
            None,
            offer["offer_id"],
            offer["engine"],
            guardrail=tuple(problems),
            timings=watch.ms,
        )
    log.info("no_offer", reason=reason, problems=problems or None)
    return Outcome(event.event_id, "no_offer", reason, guardrail=tuple(problems), timings=watch.ms)
