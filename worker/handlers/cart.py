"""Cart events, as named stages: facts, gate, history, cap, request (``plan``), ask, check
(``CartPlan.ask``), write (``CartPlan.write``). Only ``cart_abandoned`` can get an offer; every
other cart event updates the session and records why it got none.

Money safety: the cap is a bound of the request's schema, the rules check the answer and the
rounded discount again, and ``write`` asks the rules once more on what is committed (with the
customer locked by the runner): a newer event of the session, an offer made to this customer
meanwhile, or a live code of theirs means no new code.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import structlog

from worker.deps import Deps, JobInfo
from worker.domain import claims, recovery, rules
from worker.domain.codes import InvalidCode
from worker.domain.copy import (
    CartFacts,
    Catalogue,
    CatalogueError,
    CopyEntry,
    allowed,
    choice_problems,
    fill,
)
from worker.domain.events import CartEvent, EventType
from worker.domain.experiment import EligibleCart
from worker.domain.lift import Group
from worker.domain.model import EventContext, Offer, Outcome, VoidNotice
from worker.domain.session import session_row
from worker.engines.base import EngineError, EngineReply, OfferRequest
from worker.engines.catalogue import load_catalogue
from worker.engines.prompts import churn_words, customer_words
from worker.engines.schemas import offer_schema
from worker.handlers.base import AlreadyRecorded, Written, new_offer, record
from worker.redemption import Order, canonical, redeem_code
from worker.stopwatch import Stopwatch

log = structlog.get_logger("sgr.cart")


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


def gate(deps: Deps, facts: rules.Facts) -> str | None:
    """Why this event may not get an offer (cheap checks), or None."""
    return rules.gate(facts, deps.rules)


def history(deps: Deps, event: CartEvent, facts: rules.Facts) -> rules.Facts:
    """The facts with the customer's history (None for a new customer) and, when the
    repeat-abandoner rules are on, their recent record in the hot store."""
    facts = replace(facts, history=deps.history.history(event.user_id))
    if deps.rules.repeat_window_days > 0:
        since = facts.now - timedelta(days=deps.rules.repeat_window_days)
        record = deps.hot.abandoner_stats(event.user_id, since, event.event_id)
        facts = replace(facts, record=rules.AbandonerRecord(*record))
    return facts


def cap(deps: Deps, facts: rules.Facts) -> rules.Decision:
    """The largest discount the rules allow, or why none is."""
    return rules.cap_for(facts, deps.rules)


def allowed_copy(
    catalogue: Catalogue, facts: rules.Facts, decision: rules.Decision
) -> tuple[CopyEntry, ...]:
    """The approved entries this cart may get (its segment, inventory and past orders)."""
    hist = facts.history
    cart = CartFacts(decision.segment, facts.inventory, hist.orders_count if hist else 0)
    return allowed(catalogue, cart)


def offer_request(
    event: CartEvent,
    facts: rules.Facts,
    decision: rules.Decision,
    config: rules.RuleConfig,
    catalogue: Catalogue | None = None,
    message_mode: str = "catalogue",
) -> OfferRequest:
    """What the engine is asked for an allowed offer; its schema bounds the discount by the cap,
    and in catalogue mode makes the message one of the approved entries this cart may get."""
    assert event.cart is not None  # only cart_abandoned passes the gate, and it carries a cart
    entries = allowed_copy(catalogue or load_catalogue(), facts, decision)
    choices = tuple(e.text for e in entries) if message_mode == "catalogue" else None
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
        schema=offer_schema(
            decision.cap_pct,
            config.min_discount_pct,
            choices or None,
            who=customer_words(decision.segment, facts.history),
            churn=churn_words(decision.segment, facts.history),
        ),
        copy=entries,
        message_mode=message_mode if entries else "free",
    )


def claim_facts(request: OfferRequest) -> claims.ClaimFacts:
    """What a free-text message may state about this cart (an offer with an expiry follows it)."""
    hist = request.history
    return claims.ClaimFacts(
        inventory=request.inventory,
        offer_expires=True,
        new_customer=hist is None or hist.orders_count <= 0,
    )


def message_checks(request: OfferRequest, message: str) -> list[str]:
    """What the rules refuse in the answer's message: in catalogue mode, a text that is not one
    of the entries allowed for the cart; in free mode, the message checks (numbers, codes,
    links, quality) and the claims check (promises the shop did not make)."""
    if request.catalogue_mode:
        return choice_problems(message, request.copy)
    return (
        rules.message_problems(message)
        + rules.message_quality_problems(message)
        + claims.claim_problems(message, claim_facts(request))
    )


def ask(deps: Deps, request: OfferRequest) -> tuple[EngineReply | None, list[str]]:
    """The engine's answer checked by the rules; when it fails (any reason), the configured
    fallback's answer, or None."""
    problems: list[str] = []
    try:
        reply = deps.engine.propose(request)
        pricing = reply.answer.pricing
        problems = rules.check_answer(
            pricing.discount_percent,
            pricing.max_allowed_discount,
            "",
            request.cap_pct,
            deps.rules,
        ) + message_checks(request, pricing.customer_message)
        if not problems:
            return reply, []
        log.warning("answer_rejected", engine=reply.engine, problems=problems)
    except EngineError as exc:
        problems = [f"engine_{exc.kind}: {exc.detail[:300]}"]
        log.warning("engine_failed", kind=exc.kind, attempts=exc.attempts, detail=exc.detail[:300])
    if deps.on_invalid_answer == "policy" and deps.fallback is not deps.engine:
        return deps.fallback.propose(request), problems
    return None, problems


def final_message(
    body: str,
    code: str,
    discount: float,
    expires: datetime,
    catalogue: Catalogue | None = None,
    currency: str = "",
) -> str:
    """The model's text (an approved entry with its slots filled from the system's values), then
    the system's one sentence that states the offer."""
    body = body.strip()
    entry = catalogue.by_text(body) if catalogue is not None else None
    if entry is not None and entry.slots:
        values = {
            "percent": f"{discount:g}%",
            "code": code,
            "expires": f"{expires:%Y-%m-%d %H:%M} UTC",
            "currency": currency,
        }
        try:
            body = fill(entry.text, values)
        except CatalogueError:  # a slot the system does not hold: only the system's sentence
            body = ""
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
    """The answer (the engine's or the fallback's) checked again by the same rules on the rounded
    discount, and the offer built from it with a fresh code."""
    assert event.cart is not None
    currency = event.cart.currency
    pricing = reply.answer.pricing
    discount = rules.floor_to(pricing.discount_percent, 0.01)
    final = rules.check_answer(
        discount, pricing.max_allowed_discount, "", decision.cap_pct, deps.rules
    )
    if final:  # the fallback itself must pass the same rules, or nothing is sent
        return Checked(None, "guardrail_rejected", tuple(problems + final))
    offer = new_offer(
        deps,
        event,
        facts,
        decision,
        currency=currency,
        discount=discount,
        engine=reply.engine,
        model=reply.model,
        reasoning=reply.answer.model_dump(),
        message=lambda code, expires: final_message(
            pricing.customer_message, code, discount, expires, deps.catalogue, currency
        ),
        problems=tuple(problems),
    )
    return Checked(offer, None, tuple(problems))


def recheck(
    deps: Deps, facts: rules.Facts, observed: rules.Facts, offer: Offer | None
) -> str | None:
    """At commit, with the customer locked: why the committed state refuses what was decided (a
    newer event of the session, an offer to this customer meanwhile, a live code of theirs)."""
    if offer is None and observed == facts:
        return None
    if offer is not None:
        observed = replace(observed, last_offer_at=deps.hot.last_offer_at(offer.user_id))
    reason = rules.gate(observed, deps.rules)
    if reason is None and offer is not None:
        live = deps.hot.live_offer(offer.user_id)
        if live is not None and live.usable(observed.now):
            reason = "offer_live"  # one live code per customer, whatever the window
    return reason


def experiment_group(deps: Deps, event: CartEvent) -> Group | None:
    """The customer's group when this event is an abandonment of the running experiment; None
    otherwise. An abandonment carrying the customer's own message (asking for a price) is never
    held out, and stays out of the experiment."""
    if not deps.experiment.active or event.type is not EventType.CART_ABANDONED or event.message:
        return None
    return deps.experiment.group_of(event.user_id)


def held_out_facts(deps: Deps, event: CartEvent, facts: rules.Facts) -> rules.Facts:
    """A held-out customer waits the offer window after being held out, as a treated one waits
    it after an offer: both groups' eligible carts are counted alike."""
    held = deps.hot.last_holdout_at(event.user_id, deps.experiment.id)
    if held is None or (facts.last_offer_at is not None and facts.last_offer_at >= held):
        return facts
    return replace(facts, last_offer_at=held)


def record_experiment(
    deps: Deps,
    event: CartEvent,
    group: Group | None,
    decision: rules.Decision | None,
    observed: rules.Facts,
    offer: Offer | None,
) -> None:
    """An eligible abandonment of the experiment, in either group (intention to treat: a treated
    cart counts whether or not its offer was committed), recorded with its cap; an order
    attributed to the customer's latest eligible cart within the attribution window."""
    if event.type is EventType.ORDER_COMPLETED and deps.experiment.active:
        if event.order is not None and event.order.value is not None:
            value = event.order.value  # the order block says what was paid
        else:
            value = event.cart.total if event.cart is not None else (observed.cart_value or 0.0)
        deps.hot.attribute_order(
            event.user_id, event.event_id, value, event.occurred_at, deps.attribution
        )
        return
    if group is None or decision is None or not decision.allowed:
        return
    if rules.gate(observed, deps.rules) is not None:
        return  # a newer event of the session or the window, seen at commit: not eligible
    assert event.cart is not None
    deps.hot.record_eligible(
        EligibleCart(
            event_id=event.event_id,
            experiment=deps.experiment.id,
            group=group,
            user_id=event.user_id,
            session_id=event.session_id,
            segment=decision.segment,
            cap_pct=decision.cap_pct,
            cart_value=observed.cart_value,
            margin=observed.margin,
            currency=event.cart.currency,
            decided_at=observed.now,
            offer_id=offer.offer_id if offer is not None else None,
        ),
        deps.experiment.holdout_share,
    )


# --- the plan --------------------------------------------------------------------------------
@dataclass
class CartPlan:
    """One cart event on its way: decided up to the engine's request by ``plan``, answered and
    checked by ``ask``, committed by ``write``."""

    event: CartEvent
    facts: rules.Facts
    watch: Stopwatch
    checked: Checked = field(default_factory=lambda: Checked(None, None))
    decision: rules.Decision | None = None
    request: OfferRequest | None = None
    due: bool = False  # the scheduled decision of an abandonment, taken at its due time
    group: Group | None = None  # the experiment's group of an abandonment in it

    @property
    def needs_engine(self) -> bool:
        return self.request is not None

    def ask(self, deps: Deps) -> None:
        assert self.request is not None and self.decision is not None
        reply, problems = ask(deps, self.request)
        self.watch.lap("llm")
        if reply is None:
            self.checked = Checked(None, "engine_failed", tuple(problems))
        else:
            self.checked = check(deps, self.event, self.facts, self.decision, reply, problems)
        self.watch.lap("checks")

    def write(self, deps: Deps, job: JobInfo, watch: Stopwatch) -> Written:
        """One write for the event's state, its outcome and its offer, all or nothing (the
        runner's transaction), the rules asked again on what is now committed."""
        event, facts = self.event, self.facts
        offer, reason = self.checked.offer, self.checked.reason
        if self.due:  # the session was applied at arrival: read its newest state, committed
            moved_on = recovery.at_due(event.event_id, deps.hot.get_session(event.session_id))
            late = moved_on or recheck(deps, facts, facts, offer)
            observed = replace(facts, stale=True) if moved_on else facts  # moved on: not eligible
        else:
            applied = deps.hot.apply_event(state_params(event), facts.now)
            observed = replace(
                facts,
                stale=applied is None,
                session_status=applied.status if applied else facts.session_status,
            )
            late = recheck(deps, facts, observed, offer)
        if late is not None:
            offer, reason = None, late
        notice = record(deps, event, job, watch, offer, reason, self.checked.problems)
        if offer is not None:
            deps.hot.insert_offer(offer)
        if self.due:
            deps.hot.mark_decided(event.event_id, deps.clock())
        record_experiment(deps, event, self.group, self.decision, observed, offer)
        voids = close_offers(deps, event) if event.type is EventType.ORDER_COMPLETED else ()
        self.checked = Checked(offer, reason, self.checked.problems)
        return Written(
            outcome_of(event, self.checked, watch), offer=offer, voids=voids, notice=notice
        )


def close_offers(deps: Deps, event: CartEvent) -> tuple[VoidNotice, ...]:
    """An order (inside its write): the code it used is redeemed for it (``redeem_order_code``),
    the customer's other live offers are voided (their notices for the outbox), and the order is
    kept for attribution, with why its code was refused if it was."""
    now = deps.clock()
    order = event.order
    value = order.value if order is not None and order.value is not None else None
    if value is None and event.cart is not None:
        value = event.cart.total
    currency = (order.currency if order is not None else None) or (
        event.cart.currency if event.cart is not None else None
    )
    order_id = order.order_id if order is not None else None
    code = order.code if order is not None else None
    refused: str | None = None
    if code is not None:
        code, refused = redeem_order_code(deps, event, code, Order(order_id, value, currency), now)
    # a refused code is not the one the order used: it is closed with the customer's others
    voids = deps.hot.void_for_order(
        event.event_id, event.user_id, code if refused is None else None, now
    )
    deps.hot.record_order(
        {
            "event_id": event.event_id,
            "order_id": order_id,
            "session_id": event.session_id,
            "user_id": event.user_id,
            "value": value,
            "currency": currency,
            "code": code,
            "code_refused": refused,
            "occurred_at": event.occurred_at,
        },
        now,
    )
    for notice in voids:
        log.info("offer_voided", offer_id=notice.offer_id, reason=notice.reason)
    return tuple(voids)


def redeem_order_code(
    deps: Deps, event: CartEvent, code: str, order: Order, now: datetime
) -> tuple[str, str | None]:
    """Redeem the code an order used, in the event's transaction, as ``sgr codes redeem`` and the
    API do (``worker/redemption.py``: the customer's, unexpired, not void, in the order's
    currency, one discount per order id): the code (canonical when well-formed) and None, or the
    refusal's kind (logged). A code redeemed already for this very order (over the API, say) is
    no refusal: the order had its one discount."""
    try:
        code = canonical(code)
        redeem_code(deps.hot, code, event.user_id, now, order, own_transaction=False)
    except InvalidCode as exc:
        state = deps.hot.code_state(code) if exc.kind != "malformed" else None
        if (
            exc.kind == "redeemed"
            and state is not None
            and order.order_id is not None
            and state.redeemed_order_id == order.order_id
            and state.user_id in (None, event.user_id)
        ):
            log.info("order_code_redeemed", event_id=event.event_id, order_id=order.order_id,
                     offer_id=state.offer_id, already=True)  # fmt: skip
            return code, None
        # never the code itself in a log line (another customer's may still be live)
        log.warning("order_code_refused", event_id=event.event_id, order_id=order.order_id,
                    user_id=event.user_id, kind=exc.kind,
                    offer_id=state.offer_id if state else None, currency=order.currency,
                    offer_currency=state.currency if state else None)  # fmt: skip
        return code, exc.kind
    log.info("order_code_redeemed", event_id=event.event_id, order_id=order.order_id)
    return code, None


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)  # shortest repr: the contract reads it back as the same Decimal
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"not JSON: {type(value).__name__}")


def stored_payload(event: CartEvent) -> str:
    """The event as the schedule keeps it, read back by ``parse_event`` at due time."""
    return json.dumps(event.model_dump(mode="python", exclude_none=True), default=_plain)


@dataclass
class SchedulePlan:
    """An abandonment whose decision waits (docs/recovery.md): its write applies the session's
    state now and records the decision's due time; the due job decides it later."""

    event: CartEvent
    facts: rules.Facts
    due_at: datetime
    deferred: str | None
    watch: Stopwatch
    again: bool = False  # a due decision that came due inside quiet hours: it waits again

    @property
    def needs_engine(self) -> bool:
        return False

    def ask(self, deps: Deps) -> None:
        raise AssertionError("a scheduled decision asks no engine now")

    def write(self, deps: Deps, job: JobInfo, watch: Stopwatch) -> Written:
        event, facts = self.event, self.facts
        outcome = Outcome(
            event.event_id, "scheduled", self.deferred, timings=watch.ms, due_at=self.due_at
        )
        if self.again:
            if not deps.hot.reschedule_decision(event.event_id, self.due_at, self.deferred):
                raise AlreadyRecorded(event.event_id)
            log.info("decision_deferred", event_id=event.event_id, due_at=self.due_at.isoformat())
            return Written(outcome, due=(event.event_id, self.due_at))
        applied = deps.hot.apply_event(state_params(event), facts.now)
        if applied is None:  # a newer event of the session was committed meanwhile
            reason = rules.gate(replace(facts, stale=True), deps.rules)
            record(deps, event, job, watch, None, reason)
            return Written(outcome_of(event, Checked(None, reason), watch))
        scheduled = deps.hot.schedule_decision(
            event.event_id, event.session_id, event.user_id, stored_payload(event),
            event.occurred_at, self.due_at, self.deferred, facts.now,
        )  # fmt: skip
        if not scheduled:
            raise AlreadyRecorded(event.event_id)
        log.info("decision_scheduled", event_id=event.event_id, due_at=self.due_at.isoformat(),
                 deferred=self.deferred)  # fmt: skip
        return Written(outcome, due=(event.event_id, self.due_at))


# Refusals at arrival that time cannot change: decided at once, never scheduled.
WAITABLE = (None, "offer_window")


def plan(
    deps: Deps, event: CartEvent, ctx: EventContext, watch: Stopwatch
) -> CartPlan | SchedulePlan:
    """The stages before the engine: facts, gate, history, cap, the engine's request. An
    abandonment whose decision is due later (``SGR_OFFER_DELAY_MINUTES``, quiet hours) is
    scheduled instead; at due time (``ctx`` says ``scheduled``: only a due job gets here with
    it) it is decided on the session's newest state."""
    now = deps.clock()
    if ctx.outcome is not None and ctx.outcome.outcome == "scheduled":
        return due_plan(deps, event, ctx, watch, now)
    facts = rules.facts_for(event, ctx, now)
    reason = gate(deps, facts)
    if event.type is EventType.CART_ABANDONED and reason in WAITABLE and deps.recovery.active:
        due, deferred = recovery.due_at(event.occurred_at, deps.recovery, event.timezone)
        if due > now:
            watch.lap("checks")
            return SchedulePlan(event, facts, due, deferred, watch)
    group = experiment_group(deps, event)
    if group == "holdout":
        facts = held_out_facts(deps, event, facts)
        reason = gate(deps, facts)
    watch.lap("state")
    return decide(deps, CartPlan(event, facts, watch, Checked(None, reason), group=group))


def due_plan(
    deps: Deps, event: CartEvent, ctx: EventContext, watch: Stopwatch, now: datetime
) -> CartPlan | SchedulePlan:
    """A scheduled abandonment at its due time: no offer if the session moved on (an order, a
    newer event); else the rules as at arrival, on the facts of now. Run late, inside the
    customer's quiet hours (the fleet was down): it waits again until their end."""
    verdict = recovery.at_due(event.event_id, ctx.session)
    # the session as the abandonment left it (its own state is applied already)
    facts = rules.facts_for(event, replace(ctx, outcome=None, session=None), now)
    quiet = deps.recovery.quiet
    if verdict is None and quiet is not None:
        end = recovery.quiet_end(
            now, quiet, recovery.zone(event.timezone or deps.recovery.timezone)
        )
        if end is not None:
            watch.lap("state")
            return SchedulePlan(event, facts, end, "quiet_hours", watch, again=True)
    group = experiment_group(deps, event)
    if group == "holdout":
        facts = held_out_facts(deps, event, facts)
    watch.lap("state")
    reason = verdict or gate(deps, facts)
    return decide(deps, CartPlan(event, facts, watch, Checked(None, reason), due=True, group=group))


def decide(deps: Deps, out: CartPlan) -> CartPlan:
    """The stages after the gate: history, cap, the engine's request."""
    event, facts, watch, group = out.event, out.facts, out.watch, out.group
    if out.checked.reason is None:
        out.facts = facts = history(deps, event, facts)
        watch.lap("history")
        out.decision = decision = cap(deps, facts)
        if not decision.allowed:
            out.checked = Checked(None, decision.reason)
        elif group == "holdout":
            out.checked = Checked(None, "holdout")  # the cap it would have had: lift_carts
        else:
            out.request = offer_request(
                event, facts, decision, deps.rules, deps.catalogue, deps.message_mode
            )
    if out.request is None:
        watch.lap("checks")
    return out


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
