"""The typed values every layer passes around: a customer's history, a session's state, an offer
and an event's outcome. Their stored and published forms are derived here, once each."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any

from worker.domain.timefmt import from_text, to_text

# One customer's row of features, as the cold store exports it and the snapshot stores it.
CustomerRow = tuple[str, float, float, float | None, int, datetime | None]


@dataclass(frozen=True)
class History:
    """A customer's history from the cold store."""

    user_id: str
    lifetime_value: float
    churn_probability: float
    avg_days_between_orders: float | None
    orders_count: int
    last_order_at: datetime | None


@dataclass(frozen=True)
class SessionState:
    """A cart session as the hot store holds it after its newest event."""

    session_id: str
    user_id: str
    status: str
    cart_value: float | None
    margin: float | None
    currency: str | None
    inventory: str | None
    last_event_id: str
    last_event_at: datetime


@dataclass(frozen=True)
class RecordedOutcome:
    """An event's outcome as recorded in the hot store."""

    event_id: str
    outcome: str
    reason: str | None
    offer_id: str | None
    error: str | None
    attempts: int
    due_at: datetime | None = None  # a decision that waited (or waits: outcome "scheduled")
    decided_at: datetime | None = None  # when that decision was taken


@dataclass(frozen=True)
class EventContext:
    """What the pipeline reads before deciding: the event's outcome if recorded, the session before
    the event, and when this customer last got an offer."""

    outcome: RecordedOutcome | None
    session: SessionState | None
    last_offer_at: datetime | None


# The offer's fields the result stream carries, in this order (the README documents each).
STREAM_FIELDS = (
    "offer_id",
    "event_id",
    "session_id",
    "user_id",
    "discount_pct",
    "cap_pct",
    "currency",
    "code",
    "expires_at",
    "message",
    "engine",
    "model",
    "created_at",
)
_JSON_FIELDS = ("reasoning", "guardrail")
_TIME_FIELDS = ("expires_at", "created_at", "published_at", "redeemed_at")


@dataclass(frozen=True)
class Offer:
    """One discount offer: what the hot store keeps (audit trail and outbox) and what the result
    stream carries. ``row`` and ``from_row`` are its SQL form, ``stream_entry`` its published one."""

    offer_id: str
    event_id: str
    session_id: str
    user_id: str
    currency: str
    cart_value: float
    margin: float
    segment: str
    cap_pct: float
    discount_pct: float
    code: str
    expires_at: datetime
    engine: str
    model: str | None
    reasoning: dict[str, Any]
    message: str
    guardrail: tuple[str, ...] | None
    created_at: datetime
    published_at: datetime | None = None
    redeemed_at: datetime | None = None

    def row(self) -> dict[str, Any]:
        """The offer as ``sql/hot/insert_offer.sql`` takes it (JSON and ISO text where needed)."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in _JSON_FIELDS:
                value = (
                    None
                    if value is None
                    else json.dumps(list(value) if f.name == "guardrail" else value)
                )
            elif f.name in _TIME_FIELDS:
                value = None if value is None else to_text(value)
            out[f.name] = value
        return out

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Offer:
        data = {f.name: row.get(f.name) for f in fields(cls)}
        reasoning = data["reasoning"]
        data["reasoning"] = json.loads(reasoning) if isinstance(reasoning, str) else reasoning
        guard = data["guardrail"]
        data["guardrail"] = (
            tuple(json.loads(guard) if isinstance(guard, str) else guard) if guard else None
        )
        for name in _TIME_FIELDS:
            if isinstance(data[name], str):
                data[name] = from_text(data[name])
        return cls(**data)  # type: ignore[arg-type]

    def stream_entry(self) -> dict[str, str]:
        """The entry the result stream carries: text fields, times as ISO-8601 UTC, numbers as
        decimal text, an absent model as an empty string."""
        entry = {}
        for name in STREAM_FIELDS:
            value = getattr(self, name)
            if value is None:
                entry[name] = ""
            elif isinstance(value, datetime):
                entry[name] = to_text(value)
            else:
                entry[name] = str(value)
        entry["type"] = "offer"  # a negotiation reply without a price is "reply" (conversation.py)
        return entry


@dataclass(frozen=True)
class Outcome:
    """An event's one outcome, as a job returns it."""

    event_id: str
    outcome: str  # "offer" | "no_offer" | "dead_letter" | "scheduled" (decided at due_at)
    reason: str | None = None
    offer_id: str | None = None
    engine: str | None = None
    replayed: bool = False
    guardrail: tuple[str, ...] = ()
    timings: dict[str, float] = field(default_factory=dict)
    due_at: datetime | None = None

    def as_dict(self) -> dict[str, Any]:
        due = {"due_at": to_text(self.due_at)} if self.due_at is not None else {}
        return due | {
            "event_id": self.event_id,
            "outcome": self.outcome,
            "reason": self.reason,
            "offer_id": self.offer_id,
            "engine": self.engine,
            "replayed": self.replayed,
            "guardrail": list(self.guardrail),
            "timings": self.timings,
        }


# The fields of a void notice on the offers stream (``type`` "void"), in this order.
VOID_STREAM_FIELDS = ("type", "offer_id", "code", "user_id", "session_id", "reason", "order_event_id", "voided_at")  # fmt: skip


@dataclass(frozen=True)
class VoidNotice:
    """An offer an order closed: its code no longer applies (``reason`` "order_completed").
    Published once on the offers stream, so the shop stops reminding the customer of it."""

    offer_id: str
    code: str
    user_id: str
    session_id: str
    reason: str
    order_event_id: str
    voided_at: datetime

    @property
    def entry_id(self) -> str:
        """Its id for publication once (the stream's marker key)."""
        return f"void:{self.offer_id}"

    def stream_entry(self) -> dict[str, str]:
        entry = {name: getattr(self, name, "") for name in VOID_STREAM_FIELDS if name != "type"}
        entry["voided_at"] = to_text(self.voided_at)
        return {"type": "void", **{k: str(v) for k, v in entry.items()}}
