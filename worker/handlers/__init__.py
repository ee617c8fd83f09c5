"""One handler per kind of event, each deciding a plan (``Plan``) that the runner
(``worker/runner.py``) asks the engine for and writes: ``cart`` for cart events (an abandonment
may get an offer), ``message`` for a customer's message (a negotiation turn)."""

from __future__ import annotations

from worker.domain.events import CartEvent, EventType
from worker.handlers import cart, message
from worker.handlers.base import Handler


def handler_for(event: CartEvent) -> Handler:
    """The handler of this kind of event."""
    return message.plan if event.type is EventType.CUSTOMER_MESSAGE else cart.plan
