"""What the HTTP API reads of the hot store beyond the pipeline's own values: an event's recorded
outcome with its times and the reply of its negotiation turn (``EventRecord``), and an answer kept
under an Idempotency-Key (``StoredAnswer``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class EventRecord:
    """An event's one recorded outcome, as ``GET /v1/events/{event_id}`` shows it."""

    event_id: str
    type: str | None
    user_id: str | None
    session_id: str | None
    outcome: str  # offer | no_offer | dead_letter | scheduled (a decision waiting)
    reason: str | None  # why no offer (no_offer), or the kind of failure
    offer_id: str | None
    error: str | None
    attempts: int
    occurred_at: datetime | None
    enqueued_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    reply: str | None = None  # a negotiation turn's reply
    route: str | None = None
    turn: int | None = None
    due_at: datetime | None = None  # a delayed decision's due time (docs/recovery.md)


@dataclass(frozen=True)
class StoredAnswer:
    """The answer given to the first request under one Idempotency-Key."""

    request_hash: str
    status: int
    body: str
    created_at: datetime
