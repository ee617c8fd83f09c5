"""The jobs ``sgr bench`` has workers run beside ``worker.jobs.handle_event``: the floor's no-op and
a reference job (``essentials``) that does only what any pipeline must.

Imports stay light at module level: a forking worker imports this module in every work horse that
runs ``noop``, and the floor should measure RQ, not an import (structlog pulls in rich).
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from typing import Any


def noop(payload: Any) -> None:
    """The floor's job: receives the same payload as ``handle_event`` and does nothing."""
    return None


def essentials(payload: Any) -> dict[str, Any]:
    """A reference job between the floor and the pipeline: what any pipeline has to do for an
    offer, with the project's own stores and publisher (wired as for ``handle_event``): parse the
    event, read its context, commit state + outcome + offer in one transaction, publish the offer
    and the outcome, mark them published, log one line. No rules, engine, checks or code signing: its rate is a ceiling for
    the pipeline on the machine measured."""
    from datetime import timedelta

    from worker.domain.events import parse_event
    from worker.domain.model import Offer, OutcomeNotice
    from worker.handlers.cart import state_params
    from worker.jobs import for_job

    deps = for_job().deps
    event = parse_event(payload)
    deps.hot.event_context(event.event_id, event.session_id, event.user_id)
    now = datetime.now(UTC)
    offer_id = os.urandom(8).hex()
    offer = Offer(
        offer_id=offer_id,
        event_id=event.event_id,
        session_id=event.session_id,
        user_id=event.user_id,
        currency="EUR",
        cart_value=100.0,
        margin=0.4,
        segment="reference",
        cap_pct=5.0,
        discount_pct=5.0,
        code=deps.new_code(),
        expires_at=now + timedelta(hours=48),
        engine="reference",
        model=None,
        reasoning={},
        message="reference",
        guardrail=None,
        created_at=now,
    )
    with deps.hot.transaction():
        deps.hot.apply_event(state_params(event), now)
        deps.hot.record_outcome(
            event_id=event.event_id, outcome="offer", offer_id=offer_id, finished_at=now
        )
        deps.hot.insert_offer(offer)
    notice = OutcomeNotice(event.event_id, "offer", now, offer_id=offer_id)
    deps.outbox.publish_many([offer], [notice])  # the offer and the event's outcome, as the runner
    import structlog

    structlog.get_logger("sgr.bench").info("offer_made", offer_id=offer_id)
    return {"event_id": event.event_id, "outcome": "offer", "offer_id": offer_id}
