"""A cart session's status and how an event moves it: newest event wins, 'ordered' is final.

``sql/hot/upsert_session.sql`` applies the same transitions on commit; ``session_after`` predicts
them from the state read before, so the rules can decide before the write transaction.
"""

from __future__ import annotations

from worker.domain.events import CartEvent
from worker.domain.model import SessionState

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
