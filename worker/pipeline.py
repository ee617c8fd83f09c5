"""One cart event, start to end, as named stages: context, gate, history, cap, ask, check, commit,
publish. ``process`` reads as that flow; each stage is a function a test can call on its own.

The stages see the stores, the engines, the outbox and the clock only through ``Deps``, so a test
hands them real ones on temporary files. Every event ends in exactly one recorded outcome.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

import structlog

from stores.base import HotStore
from stores.history import HistorySource
from worker import negotiation
from worker.domain import rules
from worker.domain.codes import new_code, new_offer_id
from worker.domain.events import CartEvent, EventType
from worker.domain.model import EventContext, Offer, Outcome
from worker.domain.session import session_row
from worker.engines.base import Engine, EngineError, EngineReply, OfferRequest
from worker.engines.schemas import offer_schema
from worker.outbox import Outbox
from worker.stopwatch import Stopwatch

log = structlog.get_logger("sgr.pipeline")


@dataclass(frozen=True)
class Deps:
    """A process's collaborators, wired once in ``worker/runtime.py`` (or by a test)."""

    hot: HotStore
    history: HistorySource
    engine: Engine
    fallback: Engine
    outbox: Outbox
    rules: rules.RuleConfig
    clock: Callable[[], datetime]
    offer_ttl: timedelta
    on_invalid_answer: str = "policy"
    new_code: Callable[[], str] = new_code


@dataclass(frozen=True)
class JobInfo:
    """What RQ knows about the job carrying the event (absent when called directly)."""

    job_id: str | None = None
    enqueued_at: datetime | None = None
    started_at: datetime | None = None
    attempt: int = 1


@dataclass(frozen=True)
class Checked:
    """What the check stage leaves: the offer to commit (or None and why), and every problem the
    rules found on the way (kept in the audit trail)."""

    offer: Offer | None
    reason: str | None
    problems: tuple[str, ...] = ()


# --- the stages ------------------------------------------------------------------------------
def state_params(event: CartEvent) -> dict[str, Any]:
    """The session row ``sql/hot/upsert_session.sql`` writes for this event."""
    return session_row(event)


def context(deps: Deps, event: CartEvent) -> EventContext:
    """Stage 1: what the hot store knows (one read): a recorded outcome, the session, the last
    offer to this customer."""
    return deps.hot.event_context(event.event_id, event.session_id, event.user_id)


def gate(deps: Deps, facts: rules.Facts) -> str | None:
    """Stage 2: why this event may not get an offer (cheap checks), or None."""
    return rules.gate(facts, deps.rules)


def history(deps: Deps, event: CartEvent, facts: rules.Facts) -> rules.Facts:
    """Stage 3: the facts with the customer's history (None for a new customer)."""
    return replace(facts, history=deps.history.history(event.user_id))


def cap(deps: Deps, facts: rules.Facts) -> rules.Decision:
    """Stage 4: the largest discount the rules allow, or why none is."""
    return rules.cap_for(facts, deps.rules)


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


def ask(deps: Deps, request: OfferRequest) -> tuple[EngineReply | None, list[str]]:
    """Stage 5: the engine's answer checked by the rules; when it fails (any reason), the
    configured fallback's answer, or None."""
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


def final_message(body: str, code: str, discount: float, expires: datetime) -> str:
    """The model's text, then the system's one sentence that states the offer."""
    body = body.strip()
    line = rules.offer_line(code, discount, expires)
    return f"{body}\n{line}" if body else line


def check(
    deps: Deps,
    event: CartEvent,
    facts: rules.Facts,
    decision: rules.Decision,
    reply: EngineReply,
    problems: list[str],
) -> Checked:
    """Stage 6: the answer (the engine's or the fallback's) checked again by the same rules on
    the rounded discount, and the offer built from it with a fresh code."""
    assert event.cart is not None
    pricing = reply.answer.pricing
    discount = rules.floor_to(pricing.discount_percent, 0.01)
    final = rules.check_answer(
        discount, pricing.max_allowed_discount, "", decision.cap_pct, deps.rules
    )
    if final:  # the fallback itself must pass the same rules, or nothing is sent
        return Checked(None, "guardrail_rejected", tuple(problems + final))
    now = facts.now
    offer_id = new_offer_id()
    expires = now + deps.offer_ttl
    code = deps.new_code()
    offer = Offer(
        offer_id=offer_id,
        event_id=event.event_id,
        session_id=event.session_id,
        user_id=event.user_id,
        currency=event.cart.currency,
        cart_value=facts.cart_value,
        margin=facts.margin,
        segment=decision.segment,
        cap_pct=decision.cap_pct,
        discount_pct=discount,
        code=code,
        expires_at=expires,
        engine=reply.engine,
        model=reply.model,
        reasoning=reply.answer.model_dump(),
        message=final_message(pricing.customer_message, code, discount, expires),
        guardrail=tuple(problems) or None,
        created_at=now,
    )
    return Checked(offer, None, tuple(problems))


def commit(
    deps: Deps,
    event: CartEvent,
    facts: rules.Facts,
    checked: Checked,
    job: JobInfo,
    watch: Stopwatch,
) -> tuple[bool, Checked]:
    """Stage 7: one write transaction for the event's state, its outcome and its offer, all or
    nothing. The rules are asked again on what is now committed (another worker may have applied
    a newer event of the session or made this customer an offer meanwhile). False when another run
    of the event recorded its outcome first."""
    with deps.hot.transaction():
        return commit_in_transaction(deps, event, facts, checked, job, watch)


def commit_in_transaction(
    deps: Deps,
    event: CartEvent,
    facts: rules.Facts,
    checked: Checked,
    job: JobInfo,
    watch: Stopwatch,
) -> tuple[bool, Checked]:
    """The body of ``commit``, inside a transaction the caller holds (``worker/batch.py`` commits
    a batch's events in one)."""
    offer, reason = checked.offer, checked.reason
    applied = deps.hot.apply_event(state_params(event), facts.now)
    observed = replace(
        facts,
        stale=applied is None,
        session_status=applied.status if applied else facts.session_status,
    )
    if offer is not None or observed != facts:
        if offer is not None:
            observed = replace(observed, last_offer_at=deps.hot.last_offer_at(event.user_id))
        late_reason = rules.gate(observed, deps.rules)
        if late_reason is not None:
            offer, reason = None, late_reason
    recorded = deps.hot.record_outcome(
        event_id=event.event_id,
        session_id=event.session_id,
        user_id=event.user_id,
        type=event.type.value,
        outcome="offer" if offer else "no_offer",
        reason=None if offer else reason,
        offer_id=offer.offer_id if offer else None,
        error="; ".join(checked.problems) or None,
        attempts=job.attempt,
        occurred_at=event.occurred_at,
        enqueued_at=job.enqueued_at,
        started_at=job.started_at,
        finished_at=deps.clock(),
        timings=watch.ms,
    )
    if recorded and offer is not None:
        deps.hot.insert_offer(offer)
    return recorded, Checked(offer, reason, checked.problems)


def publish(deps: Deps, offer: Offer) -> None:
    """Stage 8: the committed offer onto the result stream, through the outbox."""
    deps.outbox.publish(offer)


# --- the flow --------------------------------------------------------------------------------
def replayed(deps: Deps, event_id: str) -> Outcome:
    """The outcome an event already has (a re-run), publishing its offer if still pending."""
    prior = deps.hot.get_outcome(event_id)
    assert prior is not None
    deps.outbox.publish_pending(prior.offer_id)
    return Outcome(event_id, prior.outcome, prior.reason, prior.offer_id, replayed=True)


def process(event: CartEvent, deps: Deps, job: JobInfo | None = None) -> Outcome:
    """Turn one validated event into its one outcome (idempotent by ``event_id``)."""
    if event.type is EventType.CUSTOMER_MESSAGE:  # a negotiation turn: worker/negotiation.py
        return negotiation.process_message(event, deps, job)
    job = job or JobInfo()
    watch = Stopwatch()
    ctx = context(deps, event)
    if ctx.outcome is not None:
        deps.outbox.publish_pending(ctx.outcome.offer_id)
        log.info("event_replayed", outcome=ctx.outcome.outcome, reason=ctx.outcome.reason)
        prior = ctx.outcome
        return Outcome(event.event_id, prior.outcome, prior.reason, prior.offer_id, replayed=True)
    facts = rules.facts_for(event, ctx, deps.clock())
    watch.lap("state")

    checked = Checked(None, gate(deps, facts))
    if checked.reason is None:
        facts = history(deps, event, facts)
        watch.lap("history")
        decision = cap(deps, facts)
        if not decision.allowed:
            checked = Checked(None, decision.reason)
        else:
            reply, problems = ask(deps, offer_request(event, facts, decision, deps.rules))
            watch.lap("llm")
            if reply is None:
                checked = Checked(None, "engine_failed", tuple(problems))
            else:
                checked = check(deps, event, facts, decision, reply, problems)
    watch.lap("checks")

    recorded, checked = commit(deps, event, facts, checked, job, watch)
    if not recorded:
        return replayed(deps, event.event_id)
    if checked.offer is not None:
        publish(deps, checked.offer)  # from memory: no need to read back what was just written
        watch.lap("publish")
    return outcome_of(event, checked, watch)


def outcome_of(event: CartEvent, checked: Checked, watch: Stopwatch) -> Outcome:
    """The outcome a committed event returns (and its one log line)."""
    offer = checked.offer
    if offer is None:
        log.info(
            "no_offer",
            event_id=event.event_id,
            reason=checked.reason,
            problems=list(checked.problems) or None,
        )
        return Outcome(
            event.event_id,
            "no_offer",
            checked.reason,
            guardrail=checked.problems,
            timings=watch.ms,
        )
    log.info(
        "offer_made",
        event_id=event.event_id,
        offer_id=offer.offer_id,
        discount_pct=offer.discount_pct,
        cap_pct=offer.cap_pct,
        engine=offer.engine,
        guardrail=list(checked.problems) or None,
    )
    return Outcome(
        event.event_id,
        "offer",
        None,
        offer.offer_id,
        offer.engine,
        guardrail=checked.problems,
        timings=watch.ms,
    )
