"""The hot store: SQLite in WAL mode, one connection per process, opened at start-up."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from stores.sqlfiles import sql
from stores.timefmt import from_text, to_text

SESSION_STATUS = {
    "cart_updated": "active",
    "item_added": "active",
    "item_removed": "active",
    "checkout_started": "checkout",
    "cart_abandoned": "abandoned",
    "order_completed": "ordered",
    "customer_message": None,
}


@dataclass(frozen=True)
class SessionState:
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
class EventContext:
    """What the pipeline reads before deciding: the event's outcome if recorded, the session before
    the event, and when this customer last got an offer."""

    outcome: RecordedOutcome | None
    session: SessionState | None
    last_offer_at: datetime | None


@dataclass(frozen=True)
class RecordedOutcome:
    event_id: str
    outcome: str
    reason: str | None
    offer_id: str | None
    error: str | None
    attempts: int


class HotStore:
    """Sessions, processed events and offers. Every statement comes from ``sql/hot``."""

    def __init__(self, path: Path | str, busy_timeout_ms: int = 10_000) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.conn = sqlite3.connect(
            self.path, isolation_level=None, check_same_thread=False, timeout=busy_timeout_ms / 1000
        )
        self.conn.row_factory = sqlite3.Row
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self.conn.executescript(sql("hot/schema"))

    def close(self) -> None:
        self.conn.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction that takes the lock up front (no upgrade deadlocks)."""
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    # sessions ---------------------------------------------------------------------------------
    @staticmethod
    def _session(row: sqlite3.Row | dict[str, Any]) -> SessionState:
        data = dict(row)
        data["last_event_at"] = from_text(data["last_event_at"])
        return SessionState(**data)

    def get_session(self, session_id: str) -> SessionState | None:
        row = self.conn.execute(sql("hot/get_session"), {"session_id": session_id}).fetchone()
        return self._session(row) if row else None

    def apply_event(self, params: dict[str, Any], now: datetime) -> SessionState | None:
        """Apply one event's state (newest wins), in one statement: the session as it now is, or
        None if the event is older than the state (stale; nothing changed)."""
        row = {**params, "now": to_text(now)}
        rows = self.conn.execute(sql("hot/upsert_session"), row).fetchall()
        return self._session(rows[0]) if rows else None

    def event_context(self, event_id: str, session_id: str, user_id: str) -> EventContext:
        params = {"event_id": event_id, "session_id": session_id, "user_id": user_id}
        row = self.conn.execute(sql("hot/event_context"), params).fetchone()
        outcome = None
        if row["outcome"] is not None:
            fields = ("outcome", "reason", "offer_id", "error", "attempts")
            outcome = RecordedOutcome(event_id, *(row[k] for k in fields))
        session = None
        if row["session_id"] is not None:
            session = self._session({k: row[k] for k in SessionState.__dataclass_fields__})
        return EventContext(outcome, session, from_text(row["last_offer_at"]))

    # outcomes ---------------------------------------------------------------------------------
    def get_outcome(self, event_id: str) -> RecordedOutcome | None:
        row = self.conn.execute(sql("hot/get_outcome"), {"event_id": event_id}).fetchone()
        return RecordedOutcome(**dict(row)) if row else None

    def record_outcome(self, **fields: Any) -> bool:
        """Record an event's one outcome; False if it already had one (nothing is overwritten)."""
        fields.setdefault("attempts", 1)
        for key in ("reason", "offer_id", "error", "session_id", "user_id", "type"):
            fields.setdefault(key, None)
        for key in ("occurred_at", "enqueued_at", "started_at", "finished_at"):
            value = fields.get(key)
            fields[key] = to_text(value) if isinstance(value, datetime) else value
        timings = fields.get("timings")
        fields["timings"] = json.dumps(timings) if timings is not None else None
        return self.conn.execute(sql("hot/record_outcome"), fields).rowcount == 1

    def outcome_counts(self) -> list[tuple[str, str, int]]:
        rows = self.conn.execute(sql("hot/outcome_counts")).fetchall()
        return [(r["outcome"], r["reason"], r["n"]) for r in rows]

    # offers -----------------------------------------------------------------------------------
    def last_offer_at(self, user_id: str) -> datetime | None:
        row = self.conn.execute(sql("hot/last_offer_for_user"), {"user_id": user_id}).fetchone()
        return from_text(row["last_offer_at"])

    def insert_offer(self, offer: dict[str, Any]) -> None:
        row = dict(offer)
        row["reasoning"] = json.dumps(row["reasoning"], sort_keys=False)
        row["guardrail"] = json.dumps(row["guardrail"]) if row.get("guardrail") else None
        for key in ("expires_at", "created_at"):
            row[key] = to_text(row[key])
        self.conn.execute(sql("hot/insert_offer"), row)

    def get_offer(self, offer_id: str) -> dict[str, Any] | None:
        row = self.conn.execute(sql("hot/get_offer"), {"offer_id": offer_id}).fetchone()
        return dict(row) if row else None

    def unpublished_offers(self, limit: int = 100) -> list[dict[str, Any]]:
        rows = self.conn.execute(sql("hot/unpublished_offers"), {"limit": limit}).fetchall()
        return [dict(r) for r in rows]

    def recently_published(self, since: datetime) -> list[dict[str, Any]]:
        rows = self.conn.execute(sql("hot/recently_published"), {"since": to_text(since)})
        return [dict(r) for r in rows.fetchall()]

    def mark_published(self, offer_id: str, now: datetime) -> None:
        self.conn.execute(sql("hot/mark_published"), {"offer_id": offer_id, "now": to_text(now)})

    def redeem(self, offer_id: str, now: datetime) -> bool:
        params = {"offer_id": offer_id, "now": to_text(now)}
        return self.conn.execute(sql("hot/redeem_offer"), params).rowcount == 1

    def forget_dead_letter(self, event_id: str) -> bool:
        return (
            self.conn.execute(sql("hot/forget_dead_letter"), {"event_id": event_id}).rowcount == 1
        )

    # reports ----------------------------------------------------------------------------------
    def summary(self) -> dict[str, int]:
        return dict(self.conn.execute(sql("hot/demo_summary")).fetchone())

    def offers_by_engine(self) -> dict[str, int]:
        rows = self.conn.execute(sql("hot/offers_by_engine")).fetchall()
        return {f"{r['engine']}:{r['model']}" if r["model"] else r["engine"]: r["n"] for r in rows}

    def sample_offers(self, limit: int = 8) -> list[dict[str, Any]]:
        rows = self.conn.execute(sql("hot/sample_offers"), {"limit": limit}).fetchall()
        return [dict(r) | {"reasoning": json.loads(r["reasoning"])} for r in rows]

    def largest_offer(self) -> dict[str, float] | None:
        row = self.conn.execute(sql("hot/largest_offer")).fetchone()
        return dict(row) if row else None

    def query(self, text: str, params: dict[str, Any] | tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        """Read-only queries of reporting tools (the statement text comes from ``sql/``)."""
        return self.conn.execute(text, params).fetchall()
