"""What a handler gives the runner: a ``Plan`` per event. The runner calls ``ask`` (the engine's
part; in a worker thread when several events ask at once) and then ``write`` inside its one
write transaction, with the customer locked: ``write`` reads again what may have changed since
the plan was made, records the event's one outcome and returns what to publish."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from worker.deps import Deps, JobInfo
from worker.domain import rules
from worker.domain.codes import new_offer_id
from worker.domain.conversation import Turn
from worker.domain.events import CartEvent
from worker.domain.model import EventContext, Offer, Outcome, VoidNotice
from worker.stopwatch import Stopwatch


@dataclass(frozen=True)
class Written:
    """What a plan committed: the event's outcome, and the offer or turn to publish."""

    outcome: Outcome
    offer: Offer | None = None
    turn: Turn | None = None
    due: tuple[str, datetime] | None = None  # a decision scheduled: (event id, due time)
    voids: tuple[VoidNotice, ...] = ()  # offers an order closed


class AlreadyRecorded(Exception):
    """Another run of the event recorded its outcome first: the runner undoes this run's writes
    (its savepoint) and replays the recorded outcome."""


class Plan(Protocol):
    @property
    def needs_engine(self) -> bool: ...

    def ask(self, deps: Deps) -> None: ...

    def write(self, deps: Deps, job: JobInfo, watch: Stopwatch) -> Written: ...


Handler = Callable[[Deps, CartEvent, EventContext, Stopwatch], Plan]


def record(
    deps: Deps,
    event: CartEvent,
    job: JobInfo,
    watch: Stopwatch,
    offer: Offer | None,
    reason: str | None,
    problems: tuple[str, ...] = (),
) -> None:
    """Record the event's one outcome (inside the runner's transaction); raises
    ``AlreadyRecorded`` when another run of the event recorded one first."""
    recorded = deps.hot.record_outcome(
        event_id=event.event_id,
        session_id=event.session_id,
        user_id=event.user_id,
        type=event.type.value,
        outcome="offer" if offer else "no_offer",
        reason=None if offer else reason,
        offer_id=offer.offer_id if offer else None,
        error="; ".join(problems) or None,
        attempts=job.attempt,
        occurred_at=event.occurred_at,
        enqueued_at=job.enqueued_at,
        started_at=job.started_at,
        finished_at=deps.clock(),
        timings=watch.ms,
    )
    if not recorded:
        raise AlreadyRecorded(event.event_id)


def new_offer(
    deps: Deps,
    event: CartEvent,
    facts: rules.Facts,
    decision: rules.Decision,
    *,
    currency: str,
    discount: float,
    engine: str,
    model: str | None,
    reasoning: dict[str, Any],
    message: Callable[[str, datetime], str],
    problems: tuple[str, ...] = (),
) -> Offer:
    """The one place an ``Offer`` is made (abandonment and counter-offer alike): a fresh code
    expiring ``deps.offer_ttl`` from the event's time, and the message written around it
    (``message(code, expires_at)``)."""
    now = facts.now
    expires = now + deps.offer_ttl
    code = deps.new_code()
    return Offer(
        offer_id=new_offer_id(),
        event_id=event.event_id,
        session_id=event.session_id,
        user_id=event.user_id,
        currency=currency,
        cart_value=facts.cart_value,
        margin=facts.margin,
        segment=decision.segment,
        cap_pct=decision.cap_pct,
        discount_pct=discount,
        code=code,
        expires_at=expires,
        engine=engine,
        model=model,
        reasoning=reasoning,
        message=message(code, expires),
        guardrail=problems or None,
        created_at=now,
    )
