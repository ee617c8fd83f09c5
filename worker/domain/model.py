"""The typed values every layer passes around: a customer's history, a session's state, an offer
and an event's outcome. Their stored and published forms are derived here, once each."""

from __future__ import annotations

import hashlib
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
    "supersedes",
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

    @property
    def supersedes(self) -> str | None:
        """The offer this one replaces (a counter-offer voids the customer's live offer; the
        negotiation handler records its id in the reasoning), else None."""
        value = self.reasoning.get("supersedes") if isinstance(self.reasoning, dict) else None
        return value if isinstance(value, str) and value else None

    def stream_entry(self) -> dict[str, str]:
        """The entry the result stream carries: text fields, times as ISO-8601 UTC, numbers as
        decimal text, an absent model or ``supersedes`` as an empty string."""
        entry = {}
        for name in STREAM_FIELDS:
            value = self.supersedes if name == "supersedes" else getattr(self, name)
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


# The outcome stream's entry (``OutcomeNotice.stream_entry``), in this order (docs/contract.md).
OUTCOME_STREAM_FIELDS = (
    "type",
    "outcome_id",
    "event_id",
    "event_type",
    "session_id",
    "user_id",
    "outcome",
    "reason",
    "offer_id",
    "error_kind",
    "error",
    "at",
)
# What a shop reads in ``outcome``: the three recorded outcomes, and an event the bridge refused.
OUTCOMES = ("offer", "no_offer", "dead_letter", "rejected")
# Dead letters and refusals whose ``error`` is the contract's own lines (the field and the value
# the shop sent): published; every other kind's error text stays in the hot store.
CONTRACT_ERROR_KINDS = ("invalid_event", "not_json")


def outcome_id(event_id: str, at: str, *what: str | None) -> str:
    """The id of one recorded outcome's stream entry (and of its exactly-once marker), from the
    event, the moment and what was recorded: the same for every publication of that record,
    another for the outcome of a requeued dead letter."""
    text = "\n".join([event_id, at, *(w or "" for w in what)])
    return "out-" + hashlib.sha256(text.encode()).hexdigest()[:24]


@dataclass(frozen=True)
class OutcomeNotice:
    """What the outcome stream says of one event: its one recorded outcome (``offer`` with its
    offer id, ``no_offer`` with its reason, ``dead_letter`` with its error kind) or, for an event
    the bridge refused before it was queued, ``rejected``. ``at`` is when it was decided."""

    event_id: str
    outcome: str
    at: datetime
    reason: str | None = None
    offer_id: str | None = None
    error_kind: str | None = None
    error: str | None = None
    event_type: str | None = None
    session_id: str | None = None
    user_id: str | None = None
    key: str | None = None  # the entry's id when not derived from the record (a refusal's)

    @property
    def outcome_id(self) -> str:
        what = (self.outcome, self.reason, self.offer_id, self.error_kind)
        return self.key or outcome_id(self.event_id, to_text(self.at), *what)

    def stream_entry(self) -> dict[str, str]:
        """Text fields, empty where a value does not apply; the error text only for the
        contract's own errors (never an exception's text, a path or a traceback)."""
        public_error = self.error if self.error_kind in CONTRACT_ERROR_KINDS else None
        values: dict[str, str | None] = {
            "type": "outcome",
            "outcome_id": self.outcome_id,
            "event_id": self.event_id,
            "event_type": self.event_type,
            "session_id": self.session_id,
            "user_id": self.user_id,
            "outcome": self.outcome,
            "reason": self.reason,
            "offer_id": self.offer_id,
            "error_kind": self.error_kind,
            "error": public_error[:2000] if public_error else None,
            "at": to_text(self.at),
        }
        return {name: values[name] or "" for name in OUTCOME_STREAM_FIELDS}

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> OutcomeNotice:
        """From a ``processed_events`` row (times already crossed to ``datetime``)."""
        return cls(
            event_id=row["event_id"],
            outcome=row["outcome"],
            at=row["finished_at"],
            reason=row.get("reason"),
            offer_id=row.get("offer_id"),
            error_kind=row.get("error_kind"),
            error=row.get("error"),
            event_type=row.get("type"),
            session_id=row.get("session_id"),
            user_id=row.get("user_id"),
        )
