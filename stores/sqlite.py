"""The hot store on SQLite (WAL mode; one connection per process, opened at start-up): the
backend for one host. Every statement comes from ``sql/hot``."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from stores.base import StoreUnavailable
from stores.sqlfiles import sql
from worker.domain.codes import CodeState
from worker.domain.conversation import Conversation, LiveOffer, Turn
from worker.domain.model import EventContext, Offer, RecordedOutcome, SessionState
from worker.domain.timefmt import from_text, to_text


def _unwritable(exc: sqlite3.Error) -> bool:
    text = str(exc).lower()
    return any(
        s in text for s in ("readonly", "read-only", "disk", "full", "i/o", "unable to open")
    )


class SqliteHotStore:
    """Sessions, processed events and offers in one SQLite file."""

    def __init__(self, path: Path | str, busy_timeout_ms: int = 10_000) -> None:
        self.path = Path(path)
        self.where = str(self.path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.conn = sqlite3.connect(
                self.path,
                isolation_level=None,
                check_same_thread=False,
                timeout=busy_timeout_ms / 1000,
            )
            self.conn.row_factory = sqlite3.Row
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
            self.conn.execute("PRAGMA synchronous=NORMAL")
            old = self.conn.execute(sql("hot/old_schema")).fetchone()
            if old is not None:
                raise StoreUnavailable(
                    f"hot store {self.path} was made by an older version (offer codes changed): "
                    "move it aside, or start afresh with `sgr setup-data --force`"
                )
            self.conn.executescript(sql("hot/schema"))
        except (sqlite3.Error, OSError) as exc:
            raise StoreUnavailable(f"hot store {self.path}: {exc}") from None

    def close(self) -> None:
        self.conn.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction that takes the lock up front (no upgrade deadlocks). A store that
        cannot be written (read-only, full, I/O error) raises StoreUnavailable naming its path."""
        try:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield self.conn
            except BaseException:
                if self.conn.in_transaction:
                    self.conn.execute("ROLLBACK")
                raise
            self.conn.execute("COMMIT")
        except sqlite3.OperationalError as exc:
            if _unwritable(exc):
                raise StoreUnavailable(f"hot store {self.path} cannot be written: {exc}") from None
            raise

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

    def insert_offer(self, offer: Offer) -> None:
        self.conn.execute(sql("hot/insert_offer"), offer.row())

    def get_offer(self, offer_id: str) -> Offer | None:
        row = self.conn.execute(sql("hot/get_offer"), {"offer_id": offer_id}).fetchone()
        return Offer.from_row(dict(row)) if row else None

    def unpublished_offers(self, limit: int = 100) -> list[Offer]:
        rows = self.conn.execute(sql("hot/unpublished_offers"), {"limit": limit}).fetchall()
        return [Offer.from_row(dict(r)) for r in rows]

    def recently_published(self, since: datetime) -> list[Offer]:
        rows = self.conn.execute(sql("hot/recently_published"), {"since": to_text(since)})
        return [Offer.from_row(dict(r)) for r in rows.fetchall()]

    def mark_published(self, offer_id: str, now: datetime) -> None:
        self.conn.execute(sql("hot/mark_published"), {"offer_id": offer_id, "now": to_text(now)})

    def code_state(self, code: str) -> CodeState | None:
        row = self.conn.execute(sql("hot/get_code"), {"code": code}).fetchone()
        if row is None:
            return None
        expires = from_text(row["expires_at"])
        assert expires is not None
        return CodeState(
            row["offer_id"],
            row["discount_pct"],
            row["currency"],
            expires,
            from_text(row["redeemed_at"]),
            from_text(row["voided_at"]),
            row["superseded_by"],
        )

    def redeem(self, code: str, now: datetime) -> bool:
        """Mark the offer of ``code`` redeemed; False if it is unknown, redeemed or expired."""
        params = {"code": code, "now": to_text(now)}
        return self.conn.execute(sql("hot/redeem_offer"), params).rowcount == 1

    def forget_dead_letter(self, event_id: str) -> bool:
        return (
            self.conn.execute(sql("hot/forget_dead_letter"), {"event_id": event_id}).rowcount == 1
        )

    # conversations (negotiation: worker/negotiation.py) ---------------------------------------
    def conversation(self, session_id: str, user_id: str, limit: int = 20) -> Conversation:
        """A session's newest turns (oldest first) and the customer's live offer, in one read
        transaction."""
        with self._read():
            rows = self.conn.execute(
                sql("hot/conversation_turns"), {"session_id": session_id, "limit": limit}
            ).fetchall()
            live = self.conn.execute(sql("hot/live_offer"), {"user_id": user_id}).fetchone()
        turns = tuple(Turn.from_row(dict(r)) for r in rows)
        return Conversation(turns, self._live(live) if live else None)

    def live_offer(self, user_id: str) -> LiveOffer | None:
        row = self.conn.execute(sql("hot/live_offer"), {"user_id": user_id}).fetchone()
        return self._live(row) if row else None

    @staticmethod
    def _live(row: sqlite3.Row) -> LiveOffer:
        data = dict(row)
        for name in ("expires_at", "redeemed_at", "created_at"):
            data[name] = from_text(data[name])
        return LiveOffer(**data)

    @contextmanager
    def _read(self) -> Iterator[None]:
        if self.conn.in_transaction:  # already inside the caller's transaction
            yield
            return
        self.conn.execute("BEGIN")
        try:
            yield
        finally:
            self.conn.execute("COMMIT")

    def insert_turn(self, turn: Turn) -> int | None:
        """Record a turn under the session's next number (returned); None if the event already
        has its turn."""
        rows = self.conn.execute(sql("hot/insert_turn"), turn.row()).fetchall()
        return int(rows[0]["turn"]) if rows else None

    def get_turn(self, event_id: str) -> Turn | None:
        row = self.conn.execute(sql("hot/get_turn"), {"event_id": event_id}).fetchone()
        return Turn.from_row(dict(row)) if row else None

    def void_offer(self, offer_id: str, superseded_by: str, now: datetime) -> None:
        params = {"offer_id": offer_id, "superseded_by": superseded_by, "now": to_text(now)}
        self.conn.execute(sql("hot/void_offer"), params)

    def mark_turn_published(self, event_id: str, now: datetime) -> None:
        params = {"event_id": event_id, "now": to_text(now)}
        self.conn.execute(sql("hot/mark_turn_published"), params)

    def unpublished_turns(self, limit: int = 100) -> list[Turn]:
        rows = self.conn.execute(sql("hot/unpublished_turns"), {"limit": limit}).fetchall()
        return [Turn.from_row(dict(r)) for r in rows]

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

    # batches (worker/batch.py: one read, one transaction, one publication per batch) ----------
    def event_contexts(self, items: list[tuple[str, str, str]]) -> list[EventContext]:
        """``event_context`` for many ``(event_id, session_id, user_id)`` in one statement, in
        the order given."""
        if not items:
            return []
        rows = self.conn.execute(
            sql("hot/event_contexts"), {"items": json.dumps([list(item) for item in items])}
        ).fetchall()
        out = []
        for (event_id, _, _), row in zip(items, rows, strict=True):
            outcome = None
            if row["outcome"] is not None:
                fields = ("outcome", "reason", "offer_id", "error", "attempts")
                outcome = RecordedOutcome(event_id, *(row[k] for k in fields))
            session = None
            if row["session_id"] is not None:
                session = self._session({k: row[k] for k in SessionState.__dataclass_fields__})
            out.append(EventContext(outcome, session, from_text(row["last_offer_at"])))
        return out

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        """Inside ``transaction()``: the writes of the block are undone alone if it raises (one
        event of a batch failing leaves the others' writes in the transaction)."""
        self.conn.execute("SAVEPOINT sgr_item")
        try:
            yield
        except BaseException:
            self.conn.execute("ROLLBACK TO sgr_item")
            self.conn.execute("RELEASE sgr_item")
            raise
        self.conn.execute("RELEASE sgr_item")

    def get_offers(self, offer_ids: list[str]) -> list[Offer]:
        if not offer_ids:
            return []
        params = {"offer_ids": json.dumps(offer_ids)}
        rows = self.conn.execute(sql("hot/get_offers"), params).fetchall()
        return [Offer.from_row(dict(r)) for r in rows]

    def mark_published_many(self, offer_ids: list[str], now: datetime) -> None:
        if offer_ids:
            params = {"offer_ids": json.dumps(offer_ids), "now": to_text(now)}
            self.conn.execute(sql("hot/mark_published_many"), params)
