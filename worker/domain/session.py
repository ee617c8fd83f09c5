"""A cart session's status and how an event moves it: newest event wins, 'ordered' is final.

``sql/hot/upsert_session.sql`` applies the same transitions on commit; ``session_after`` predicts
them from the state read before, so the rules can decide before the write transaction.
"""

from __future__ import annotations

from typing import Any

from worker.domain.events import CartEvent
from worker.domain.model import SessionState
from worker.domain.timefmt import to_text

# The status each event type sets (None: the event leaves the status as it is).
SESSION_STATUS: dict[str, str | None] = {
    "cart_updated": "active",
    "item_added": "active",
    "item_removed": "active",
    "checkout_started": "checkout",
    "cart_abandoned": "abandoned",
    "order_completed": "ordered",
    "customer_message": None,
}


def session_after(event: CartEvent, before: SessionState | None) -> tuple[str, bool]:
    """The session's status once ``event`` is applied, and whether the event is stale (not newer
    than the state)."""
    status = SESSION_STATUS[event.type.value]
    if before is None:
        return status or "active", False
    if (event.occurred_at, event.event_id) <= (before.last_event_at, before.last_event_id):
        return before.status, True
    if before.status == "ordered":
        return "ordered", False
    return status or before.status, False


def session_row(event: CartEvent) -> dict[str, Any]:
    """The session row ``sql/hot/upsert_session.sql`` writes for this event (the pipeline's and
    the negotiation's)."""
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
