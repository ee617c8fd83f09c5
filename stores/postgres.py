"""The hot store on PostgreSQL (psycopg 3 and a psycopg_pool connection pool): the backend for a
fleet of hosts that share one database (``SGR_HOT_STORE_URL=postgresql://...``).

The same guarantees as ``stores/sqlite.py``, given by the database to workers on any host:

- one transaction per event for its state, its outcome and its offer (``transaction()``; READ
  COMMITTED, and every call inside it goes through the transaction's one connection);
- idempotency: ``processed_events.event_id`` is the primary key and ``record_outcome`` inserts
  with ``ON CONFLICT DO NOTHING``; a second writer of the same event waits for the first one's
  transaction and then records nothing (``offers.event_id`` is unique too);
- the offer window: ``last_offer_at`` called inside a transaction first takes a transaction-level
  advisory lock on the customer (``pg_advisory_xact_lock(hashtext(user_id))``, held until COMMIT
  or ROLLBACK), then reads the last offer in a new statement, hence a new snapshot that sees every
  offer committed by whoever held the lock before. The pipeline's commit stage asks it exactly
  there, before it inserts an offer, so two hosts never both offer to one customer in a window;
- the outbox: offers carry ``published_at``, as in SQLite.

Statements come from ``sql/hot_pg`` (``%(name)s`` parameters) where the dialect differs, and from
``sql/hot`` where the text is the same and takes no parameters.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool, PoolTimeout

from stores.base import StoreUnavailable
from stores.sqlfiles import sql
from worker.domain.codes import CodeState
from worker.domain.conversation import Conversation, LiveOffer, Turn
from worker.domain.model import EventContext, Offer, RecordedOutcome, SessionState
from worker.settings import redact_url

POOL_MAX = 4  # a worker process runs one job at a time; the reaper thread and tools take a few
CONNECT_TIMEOUT_S = 10
_SCHEMA_MADE: set[tuple[int, str]] = set()
# Errors of one transaction, not of the database: the job fails and RQ retries it.
_RETRYABLE = (
    psycopg.errors.DeadlockDetected,
    psycopg.errors.SerializationFailure,
    psycopg.errors.TransactionRollback,
    psycopg.errors.QueryCanceled,
    psycopg.errors.LockNotAvailable,
)
# Times in UTC; a transaction left open by a host that froze or lost its network is ended by the
# server after 30 s (no transaction here waits on anything but the database: the LLM is asked
# before the commit), so its locks (a customer's offer window, a session's row) are not held on.
SESSION_OPTIONS = "-c TimeZone=UTC -c idle_in_transaction_session_timeout=30000"


def _sql(name: str) -> str:
    return sql(f"hot_pg/{name}")


def _clean(value: Any) -> Any:
    """PostgreSQL text cannot hold NUL characters (SQLite can): they become U+FFFD."""
    return value.replace("\x00", "\ufffd") if isinstance(value, str) else value


def _time(value: datetime | str | None) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(value)


class PostgresHotStore:
    """Sessions, processed events and offers in one PostgreSQL database, shared by hosts."""

    def __init__(self, url: str, pool_max: int = POOL_MAX) -> None:
        self.where = redact_url(url)
        self._local = threading.local()
        self._password = _password(url)
        try:
            if (os.getpid(), url) not in _SCHEMA_MADE:  # once per process (the reaper opens too)
                conn = psycopg.connect(url, connect_timeout=CONNECT_TIMEOUT_S, autocommit=True)
                with conn, conn.transaction():
                    conn.execute(_sql("schema_lock"))
                    conn.execute(_sql("schema"))
                _SCHEMA_MADE.add((os.getpid(), url))
            self.pool = ConnectionPool(
                url,
                min_size=1,
                max_size=pool_max,
                kwargs={"autocommit": True, "row_factory": dict_row, "options": SESSION_OPTIONS},
                timeout=CONNECT_TIMEOUT_S,
                open=False,
                name="sgr-hot",
            )
            self.pool.open(wait=True, timeout=CONNECT_TIMEOUT_S)
        except (psycopg.Error, PoolTimeout, OSError) as exc:
            raise StoreUnavailable(f"hot store {self.where}: {self._scrub(exc)}") from None

    def _scrub(self, exc: BaseException) -> str:
        text = " ".join(str(exc).split()) or type(exc).__name__
        return text.replace(self._password, "***") if self._password else text

    def close(self) -> None:
        self.pool.close()

    # connections ------------------------------------------------------------------------------
    @contextmanager
    def _unavailable(self) -> Iterator[None]:
        """The database gone (down, restarting, unreachable, the pool exhausted) is the store
        being unavailable, as a full disk is for SQLite: the worker stops taking jobs and the job
        goes back to the queue. A deadlock or serialization failure is not: the job is retried."""
        try:
            yield
        except _RETRYABLE:
            raise
        except (psycopg.OperationalError, PoolTimeout) as exc:
            raise StoreUnavailable(
                f"hot store {self.where} unavailable: {self._scrub(exc)}"
            ) from None

    @contextmanager
    def _conn(self) -> Iterator[psycopg.Connection[dict[str, Any]]]:
        """The current transaction's connection, or one from the pool (autocommit) for a call."""
        current = getattr(self._local, "conn", None)
        if current is not None:
            yield current
            return
        with self._unavailable(), self.pool.connection() as conn:
            yield conn  # type: ignore[misc]

    def _one(self, name: str, params: dict[str, Any] | None = None) -> dict[str, Any] | None:
        with self._conn() as conn:
            return conn.execute(_sql(name), params).fetchone()

    def _all(self, name: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        with self._conn() as conn:
            return conn.execute(_sql(name), params).fetchall()

    def _count(self, name: str, params: dict[str, Any]) -> int:
        with self._conn() as conn:
            return conn.execute(_sql(name), params).rowcount

    @contextmanager
    def transaction(self) -> Iterator[psycopg.Connection[dict[str, Any]]]:
        """One transaction on one pooled connection; every call of this thread inside it uses it."""
        if getattr(self._local, "conn", None) is not None:
            raise RuntimeError("hot store: nested transaction")
        with self._unavailable(), self.pool.connection() as conn, conn.transaction():
            self._local.conn = conn
            try:
                yield conn  # type: ignore[misc]
            finally:
                self._local.conn = None

    # sessions ---------------------------------------------------------------------------------
    @staticmethod
    def _session(row: dict[str, Any]) -> SessionState:
        return SessionState(**{k: row[k] for k in SessionState.__dataclass_fields__})

    def get_session(self, session_id: str) -> SessionState | None:
        row = self._one("get_session", {"session_id": session_id})
        return self._session(row) if row else None

    def apply_event(self, params: dict[str, Any], now: datetime) -> SessionState | None:
        """Apply one event's state (newest wins), in one statement: the session as it now is, or
        None if the event is older than the state (stale; nothing changed)."""
        row = self._one("upsert_session", {k: _clean(v) for k, v in params.items()} | {"now": now})
        return self._session(row) if row else None

    def event_context(self, event_id: str, session_id: str, user_id: str) -> EventContext:
        params = {"event_id": event_id, "session_id": session_id, "user_id": user_id}
        row = self._one("event_context", params)
        assert row is not None
        outcome = None
        if row["outcome"] is not None:
            fields = ("outcome", "reason", "offer_id", "error", "attempts")
            outcome = RecordedOutcome(event_id, *(row[k] for k in fields))
        session = self._session(row) if row["session_id"] is not None else None
        return EventContext(outcome, session, row["last_offer_at"])

    # outcomes ---------------------------------------------------------------------------------
    def get_outcome(self, event_id: str) -> RecordedOutcome | None:
        row = self._one("get_outcome", {"event_id": event_id})
        return RecordedOutcome(**row) if row else None

    def record_outcome(self, **fields: Any) -> bool:
        """Record an event's one outcome; False if it already had one (nothing is overwritten)."""
        fields.setdefault("attempts", 1)
        for key in ("reason", "offer_id", "error", "session_id", "user_id", "type"):
            fields.setdefault(key, None)
        for key in ("occurred_at", "enqueued_at", "started_at", "finished_at"):
            fields[key] = _time(fields.get(key))
        timings = fields.get("timings")
        fields["timings"] = json.dumps(timings) if timings is not None else None
        return self._count("record_outcome", {k: _clean(v) for k, v in fields.items()}) == 1

    def outcome_counts(self) -> list[tuple[str, str, int]]:
        with self._conn() as conn:
            rows = conn.execute(sql("hot/outcome_counts")).fetchall()
        return [(r["outcome"], r["reason"], r["n"]) for r in rows]

    def forget_dead_letter(self, event_id: str) -> bool:
        return self._count("forget_dead_letter", {"event_id": event_id}) == 1

    # offers -----------------------------------------------------------------------------------
    def last_offer_at(self, user_id: str) -> datetime | None:
        """When this customer last got an offer. Inside a transaction, first the customer's
        advisory lock (see the module's text): the answer then holds until COMMIT."""
        params = {"user_id": user_id}
        with self._conn() as conn:
            if getattr(self._local, "conn", None) is conn:
                conn.execute(_sql("lock_user"), params)
            row = conn.execute(_sql("last_offer_for_user"), params).fetchone()
        return row["last_offer_at"] if row else None

    def insert_offer(self, offer: Offer) -> None:
        row = offer.row()
        for name in ("expires_at", "created_at", "published_at", "redeemed_at"):
            row[name] = _time(row[name])
        self._count("insert_offer", row)

    def get_offer(self, offer_id: str) -> Offer | None:
        row = self._one("get_offer", {"offer_id": offer_id})
        return Offer.from_row(row) if row else None

    def unpublished_offers(self, limit: int = 100) -> list[Offer]:
        return [Offer.from_row(r) for r in self._all("unpublished_offers", {"limit": limit})]

    def recently_published(self, since: datetime) -> list[Offer]:
        return [Offer.from_row(r) for r in self._all("recently_published", {"since": since})]

    def mark_published(self, offer_id: str, now: datetime) -> None:
        self._count("mark_published", {"offer_id": offer_id, "now": now})

    def code_state(self, code: str) -> CodeState | None:
        row = self._one("get_code", {"code": code})
        if row is None:
            return None
        return CodeState(
            row["offer_id"], row["discount_pct"], row["currency"], row["expires_at"],
            row["redeemed_at"], row["voided_at"], row["superseded_by"],
        )  # fmt: skip

    def redeem(self, code: str, now: datetime) -> bool:
        """Mark the offer of ``code`` redeemed; False if it is unknown, redeemed or expired."""
        return self._count("redeem_offer", {"code": code, "now": now}) == 1

    # conversations (negotiation: worker/negotiation.py) ---------------------------------------
    def conversation(self, session_id: str, user_id: str, limit: int = 20) -> Conversation:
        """A session's newest turns (oldest first) and the customer's live offer, in one
        snapshot."""
        with self._conn() as conn, conn.transaction():
            if getattr(self._local, "conn", None) is not conn:
                conn.execute(_sql("read_snapshot"))
            rows = conn.execute(
                _sql("conversation_turns"), {"session_id": session_id, "limit": limit}
            ).fetchall()
            live = conn.execute(_sql("live_offer"), {"user_id": user_id}).fetchone()
        return Conversation(
            tuple(Turn.from_row(r) for r in rows), LiveOffer(**live) if live else None
        )

    def live_offer(self, user_id: str) -> LiveOffer | None:
        row = self._one("live_offer", {"user_id": user_id})
        return LiveOffer(**row) if row else None

    def insert_turn(self, turn: Turn) -> int | None:
        """Record a turn under the session's next number (returned); None if the event already
        has its turn. Inside a transaction the session's turns are locked first (numbering across
        hosts)."""
        with self._conn() as conn:
            if getattr(self._local, "conn", None) is conn:
                conn.execute(_sql("lock_session_turns"), {"session_id": turn.session_id})
            params = {k: _clean(v) for k, v in turn.row().items()}
            row = conn.execute(_sql("insert_turn"), params).fetchone()
        return int(row["turn"]) if row else None

    def get_turn(self, event_id: str) -> Turn | None:
        row = self._one("get_turn", {"event_id": event_id})
        return Turn.from_row(row) if row else None

    def void_offer(self, offer_id: str, superseded_by: str, now: datetime) -> None:
        params = {"offer_id": offer_id, "superseded_by": superseded_by, "now": now}
        self._count("void_offer", params)

    def mark_turn_published(self, event_id: str, now: datetime) -> None:
        self._count("mark_turn_published", {"event_id": event_id, "now": now})

    def unpublished_turns(self, limit: int = 100) -> list[Turn]:
        return [Turn.from_row(r) for r in self._all("unpublished_turns", {"limit": limit})]

    # batches (worker/batch.py: one read, one transaction, one publication per batch) ----------
    def event_contexts(self, items: list[tuple[str, str, str]]) -> list[EventContext]:
        """``event_context`` for many ``(event_id, session_id, user_id)`` in one statement, in
        the order given."""
        if not items:
            return []
        event_ids, session_ids, user_ids = (list(column) for column in zip(*items, strict=True))
        params = {"event_ids": event_ids, "session_ids": session_ids, "user_ids": user_ids}
        out = []
        for event_id, row in zip(event_ids, self._all("event_contexts", params), strict=True):
            outcome = None
            if row["outcome"] is not None:
                fields = ("outcome", "reason", "offer_id", "error", "attempts")
                outcome = RecordedOutcome(event_id, *(row[k] for k in fields))
            session = self._session(row) if row["session_id"] is not None else None
            out.append(EventContext(outcome, session, row["last_offer_at"]))
        return out

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        """Inside ``transaction()``: the writes of the block are undone alone if it raises (one
        event of a batch failing leaves the others' writes in the transaction)."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            raise RuntimeError("hot store: savepoint outside a transaction")
        with conn.transaction():  # nested: SAVEPOINT, RELEASE or ROLLBACK TO
            yield

    def get_offers(self, offer_ids: list[str]) -> list[Offer]:
        if not offer_ids:
            return []
        return [Offer.from_row(r) for r in self._all("get_offers", {"offer_ids": offer_ids})]

    def mark_published_many(self, offer_ids: list[str], now: datetime) -> None:
        if offer_ids:
            self._count("mark_published_many", {"offer_ids": list(offer_ids), "now": now})

    # reports ----------------------------------------------------------------------------------
    def summary(self) -> dict[str, int]:
        with self._conn() as conn:
            row = conn.execute(sql("hot/demo_summary")).fetchone()
        assert row is not None
        return {k: int(v) for k, v in row.items()}

    def offers_by_engine(self) -> dict[str, int]:
        with self._conn() as conn:
            rows = conn.execute(sql("hot/offers_by_engine")).fetchall()
        return {f"{r['engine']}:{r['model']}" if r["model"] else r["engine"]: r["n"] for r in rows}

    def sample_offers(self, limit: int = 8) -> list[dict[str, Any]]:
        rows = self._all("sample_offers", {"limit": limit})
        return [r | {"reasoning": json.loads(r["reasoning"])} for r in rows]

    def largest_offer(self) -> dict[str, float] | None:
        with self._conn() as conn:
            row = conn.execute(sql("hot/largest_offer")).fetchone()
        return dict(row) if row else None

    def query(self, text: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """Read-only queries of reporting tools (the statement text comes from ``sql/``; with
        parameters, in ``%(name)s`` style). Times come back as aware datetimes in UTC."""
        with self._conn() as conn:
            return conn.execute(text, params).fetchall()


def _password(url: str) -> str | None:
    try:
        return psycopg.conninfo.conninfo_to_dict(url).get("password") or None  # type: ignore[return-value]
    except psycopg.Error:
        return None
