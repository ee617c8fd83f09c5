"""The hot store's queries, written once over a few primitives that each backend gives.

A backend (``stores/sqlite.py``, ``stores/postgres.py``) is a subclass that names its dialect and
parameter style and implements the primitives: ``transaction``, ``savepoint``, ``_lock`` (a lock
on a key held until the transaction ends), ``_snapshot`` (several reads, one snapshot),
``_in_transaction``, ``_rows``/``_write``/``_script`` (statements, with the backend's errors
mapped to ``StoreUnavailable``), ``close``, and how values cross (``_time_in``/``_time_out``,
``_text_in``, ``_list_in``). Statements come from ``sql/hot`` (shared, ``:name`` parameters) or
``sql/hot/<dialect>`` where the SQL really differs (``stores/sqlfiles.py``). Opening a store runs
its schema migrations (``stores/migrations.py``). A third backend is its primitives plus, where
its SQL differs, its own files.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from contextlib import AbstractContextManager
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

from stores.migrations import MigrationReport, upgrade
from stores.sqlfiles import dialect_sql, pyformat
from worker.domain.codes import CodeState
from worker.domain.conversation import Conversation, LiveOffer, Turn
from worker.domain.experiment import EligibleCart
from worker.domain.lift import CartRow
from worker.domain.model import (
    EventContext,
    Offer,
    OutcomeNotice,
    RecordedOutcome,
    SessionState,
    VoidNotice,
)
from worker.domain.records import EventRecord, StoredAnswer

_OUTCOME = ("outcome", "reason", "offer_id", "error", "attempts")
_OUTCOME_TIMES = ("occurred_at", "enqueued_at", "started_at", "finished_at")
_OFFER_TIMES = ("expires_at", "created_at", "published_at", "redeemed_at")


class SqlHotStore(ABC):
    """Sessions, processed events (one outcome each) and offers (audit trail and outbox), on a
    SQL database reached through the subclass's primitives."""

    dialect: ClassVar[str]  # the folder of its own SQL: sql/hot/<dialect>, sql/migrations/<dialect>
    paramstyle: ClassVar[str]  # "named" (:name) or "pyformat" (%(name)s)
    where: str  # the store's path or redacted URL, for messages

    # primitives --------------------------------------------------------------------------------
    @abstractmethod
    def close(self) -> None: ...

    @abstractmethod
    def transaction(self) -> AbstractContextManager[Any]:
        """One write transaction; every call of this thread inside it is part of it."""

    @abstractmethod
    def savepoint(self) -> AbstractContextManager[None]:
        """Inside ``transaction()``: the block's writes are undone alone if it raises."""

    @abstractmethod
    def _in_transaction(self) -> bool: ...

    @abstractmethod
    def _lock(self, key: str) -> None:
        """Inside a transaction: serialize on ``key`` across processes and hosts until it ends."""

    @abstractmethod
    def _snapshot(self) -> AbstractContextManager[None]:
        """Several reads that see one snapshot (inside a transaction: that transaction's)."""

    @abstractmethod
    def _rows(self, text: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]: ...

    @abstractmethod
    def _write(self, text: str, params: dict[str, Any]) -> int:
        """Run one statement; the number of rows it changed."""

    @abstractmethod
    def _script(self, text: str) -> None:
        """Run several statements without parameters (a migration), inside the transaction."""

    @staticmethod
    @abstractmethod
    def _time_in(value: datetime | str | None) -> Any: ...

    @staticmethod
    @abstractmethod
    def _time_out(value: Any) -> datetime | None: ...

    @staticmethod
    def _text_in(value: Any) -> Any:
        return value

    @staticmethod
    @abstractmethod
    def _list_in(values: list[str]) -> Any: ...

    # shared helpers ----------------------------------------------------------------------------
    def _text(self, folder: str, name: str) -> str:
        return dialect_sql(folder, self.dialect, name, self.paramstyle)

    def _q(self, name: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        return self._rows(self._text("hot", name), params)

    def _one(self, name: str, params: dict[str, Any] | None = None) -> dict[str, Any] | None:
        rows = self._q(name, params)
        return rows[0] if rows else None

    def _w(self, name: str, params: dict[str, Any]) -> int:
        return self._write(self._text("hot", name), params)

    def _clean(self, params: dict[str, Any]) -> dict[str, Any]:
        return {k: self._text_in(v) for k, v in params.items()}

    def report(
        self, folder: str, name: str, params: dict[str, Any] | None = None
    ) -> list[dict[str, Any]]:
        """Rows of a read-only report query ``sql/<folder>/NAME.sql`` (metrics, tools), written
        once for every dialect; times given as ``datetime`` cross as the backend keeps them."""
        crossed = {
            k: self._time_in(v) if isinstance(v, datetime) else self._text_in(v)
            for k, v in (params or {}).items()
        }
        return self._rows(self._text(folder, name), crossed)

    def remove(self, name: str, keys: list[str]) -> int:
        """Delete the rows of ``keys`` with ``sql/retention/delete_<name>.sql`` in one
        transaction (retention, once the cold store holds them); how many left."""
        with self.transaction():
            params = {"keys": self._list_in(list(keys))}
            return self._write(self._text("retention", f"delete_{name}"), params)

    def migrate(self) -> MigrationReport:
        """Apply the schema migrations this store lacks (store open does; so does
        ``sgr migrate``)."""
        return upgrade(self)

    def query(self, text: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """Read-only queries of reporting tools (the text comes from ``sql/``, ``:name``
        parameters)."""
        return self._rows(pyformat(text) if self.paramstyle == "pyformat" else text, params)

    # sessions ----------------------------------------------------------------------------------
    def _session(self, row: dict[str, Any]) -> SessionState:
        data = {k: row[k] for k in SessionState.__dataclass_fields__}
        data["last_event_at"] = self._time_out(data["last_event_at"])
        return SessionState(**data)

    def get_session(self, session_id: str) -> SessionState | None:
        row = self._one("get_session", {"session_id": session_id})
        return self._session(row) if row else None

    def apply_event(self, params: dict[str, Any], now: datetime) -> SessionState | None:
        """Apply one event's state (newest wins), in one statement: the session as it now is, or
        None if the event is older than the state (stale; nothing changed)."""
        row = self._one("upsert_session", self._clean(params) | {"now": self._time_in(now)})
        return self._session(row) if row else None

    def _context(self, event_id: str, row: dict[str, Any]) -> EventContext:
        outcome = None
        if row["outcome"] is not None:
            fields = {k: row[k] for k in _OUTCOME} | {"due_at": self._time_out(row["due_at"])}
            outcome = RecordedOutcome(event_id=event_id, **fields)
        session = self._session(row) if row["session_id"] is not None else None
        return EventContext(outcome, session, self._time_out(row["last_offer_at"]))

    def event_context(self, event_id: str, session_id: str, user_id: str) -> EventContext:
        params = {"event_id": event_id, "session_id": session_id, "user_id": user_id}
        row = self._one("event_context", params)
        assert row is not None  # the statement always gives one row
        return self._context(event_id, row)

    def event_contexts(self, items: list[tuple[str, str, str]]) -> list[EventContext]:
        """``event_context`` for many ``(event_id, session_id, user_id)`` in one statement, in
        the order given."""
        if not items:
            return []
        event_ids, session_ids, user_ids = (list(column) for column in zip(*items, strict=True))
        params = {
            "event_ids": self._list_in(event_ids),
            "session_ids": self._list_in(session_ids),
            "user_ids": self._list_in(user_ids),
        }
        rows = self._q("event_contexts", params)
        return [self._context(e, row) for e, row in zip(event_ids, rows, strict=True)]

    # outcomes ----------------------------------------------------------------------------------
    def get_outcome(self, event_id: str) -> RecordedOutcome | None:
        row = self._one("get_outcome", {"event_id": event_id})
        if row is None:
            return None
        times = {k: self._time_out(row[k]) for k in ("due_at", "decided_at")}
        return RecordedOutcome(**(row | times))

    def record_outcome(self, **fields: Any) -> bool:
        """Record an event's one outcome; False if it already had one (nothing is overwritten)."""
        fields.setdefault("attempts", 1)
        for key in ("reason", "offer_id", "error", "error_kind", "session_id", "user_id", "type"):
            fields.setdefault(key, None)
        for key in _OUTCOME_TIMES:
            fields[key] = self._time_in(fields.get(key))
        timings = fields.get("timings")
        fields["timings"] = json.dumps(timings) if timings is not None else None
        return self._w("record_outcome", self._clean(fields)) == 1

    def _notice(self, row: dict[str, Any]) -> OutcomeNotice:
        return OutcomeNotice.from_row(row | {"finished_at": self._time_out(row["finished_at"])})

    def unpublished_outcomes(self, limit: int = 100) -> list[OutcomeNotice]:
        """Recorded outcomes not yet on the outcome stream, oldest first (the outbox's flush)."""
        return [self._notice(r) for r in self._q("unpublished_outcomes", {"limit": limit})]

    def unpublished_outcomes_of(self, event_ids: list[str]) -> list[OutcomeNotice]:
        """The outcomes of these events that are not yet on the outcome stream."""
        if not event_ids:
            return []
        rows = self._q("unpublished_outcomes_of", {"event_ids": self._list_in(list(event_ids))})
        return [self._notice(r) for r in rows]

    def recently_published_outcomes(self, since: datetime) -> list[OutcomeNotice]:
        rows = self._q("recently_published_outcomes", {"since": self._time_in(since)})
        return [self._notice(r) for r in rows]

    def mark_outcomes_published(self, event_ids: list[str], now: datetime) -> None:
        if event_ids:
            params = {"event_ids": self._list_in(list(event_ids)), "now": self._time_in(now)}
            self._w("mark_outcomes_published", params)

    def outcome_counts(self) -> list[tuple[str, str, int]]:
        return [(r["outcome"], r["reason"], int(r["n"])) for r in self._q("outcome_counts")]

    def forget_dead_letter(self, event_id: str) -> bool:
        return self._w("forget_dead_letter", {"event_id": event_id}) == 1

    # offers ------------------------------------------------------------------------------------
    def lock_customer(self, user_id: str) -> None:
        """Inside ``transaction()``: this customer's money decisions (offers, counter-offers,
        redemptions) are taken one transaction at a time, across processes and hosts, until the
        transaction ends; a read after it sees every offer committed before. PostgreSQL: an
        advisory transaction lock; SQLite: nothing more than the transaction's write lock, which
        BEGIN IMMEDIATE takes for the whole file up front."""
        if not self._in_transaction():
            raise RuntimeError("hot store: lock_customer outside a transaction")
        self._lock(user_id)

    def last_offer_at(self, user_id: str) -> datetime | None:
        """When this customer last got an offer. Inside a transaction the customer is locked
        first (``lock_customer``): the answer then holds until the transaction ends."""
        if self._in_transaction():
            self.lock_customer(user_id)
        row = self._one("last_offer_for_user", {"user_id": user_id})
        return self._time_out(row["last_offer_at"]) if row else None

    def insert_offer(self, offer: Offer) -> None:
        row = offer.row()
        for name in _OFFER_TIMES:
            row[name] = self._time_in(row[name])
        self._w("insert_offer", self._clean(row))

    def get_offer(self, offer_id: str) -> Offer | None:
        row = self._one("get_offer", {"offer_id": offer_id})
        return self._offer(row) if row else None

    def _offer(self, row: dict[str, Any]) -> Offer:
        return Offer.from_row(row | {k: self._time_out(row[k]) for k in _OFFER_TIMES})

    def get_offers(self, offer_ids: list[str]) -> list[Offer]:
        if not offer_ids:
            return []
        rows = self._q("get_offers", {"offer_ids": self._list_in(list(offer_ids))})
        return [self._offer(r) for r in rows]

    def unpublished_offers(self, limit: int = 100) -> list[Offer]:
        return [self._offer(r) for r in self._q("unpublished_offers", {"limit": limit})]

    def recently_published(self, since: datetime) -> list[Offer]:
        rows = self._q("recently_published", {"since": self._time_in(since)})
        return [self._offer(r) for r in rows]

    def mark_published(self, offer_id: str, now: datetime) -> None:
        self._w("mark_published", {"offer_id": offer_id, "now": self._time_in(now)})

    def mark_published_many(self, offer_ids: list[str], now: datetime) -> None:
        if offer_ids:
            params = {"offer_ids": self._list_in(list(offer_ids)), "now": self._time_in(now)}
            self._w("mark_published_many", params)

    def code_state(self, code: str) -> CodeState | None:
        row = self._one("get_code", {"code": code})
        return self._code_state(row) if row is not None else None

    def _code_state(self, row: dict[str, Any]) -> CodeState:
        expires = self._time_out(row["expires_at"])
        assert expires is not None  # NOT NULL
        # float(): SQLite's RETURNING (redeem_offer.sql) gives a REAL that holds a whole number
        # as an int (2, where a SELECT gives 2.0); a percentage is a float on every path
        return CodeState(
            row["offer_id"], float(row["discount_pct"]), row["currency"], expires,
            self._time_out(row["redeemed_at"]), self._time_out(row.get("voided_at")),
            row.get("superseded_by"), row["user_id"], row["redeemed_order_id"],
        )  # fmt: skip

    def redeem(
        self, code: str, now: datetime, user_id: str | None = None, order_id: str | None = None
    ) -> bool:
        """Mark the offer of ``code`` redeemed; False if it is unknown, redeemed, expired, void,
        (with ``user_id``) another customer's, or (with ``order_id``) for an order another code
        was redeemed for: checked in the one UPDATE, so atomically."""
        return self.redeem_state(code, now, user_id, order_id) is not None

    def redeem_state(
        self,
        code: str,
        now: datetime,
        user_id: str | None = None,
        order_id: str | None = None,
        currency: str | None = None,
    ) -> CodeState | None:
        """``redeem`` (and, with ``currency``, only an offer in it), in one statement that
        returns the offer as redeemed; None if nothing was. Inside a transaction the order is
        locked first (two codes racing for one order: the second sees the first)."""
        if order_id is not None and self._in_transaction():
            self._lock(f"order:{order_id}")
        params = {"code": code, "now": self._time_in(now), "user_id": user_id}
        row = self._one("redeem_offer", params | {"order_id": order_id, "currency": currency})
        return self._code_state(row) if row is not None else None

    def order_redeemed(self, order_id: str) -> str | None:
        """The code redeemed for ``order_id``, if any (one discount per order)."""
        row = self._one("order_redeemed", {"order_id": order_id})
        return row["code"] if row else None

    def live_offers(self, user_id: str, now: datetime) -> list[Offer]:
        """The customer's offers that may still be redeemed (newest first)."""
        rows = self._q("live_offers_for_user", {"user_id": user_id, "now": self._time_in(now)})
        return [self._offer(r) for r in rows]

    # the HTTP API's reads and Idempotency-Key answers --------------------------------------------
    def event_record(self, event_id: str) -> EventRecord | None:
        """An event's recorded outcome with its times and its turn's reply (None: unknown)."""
        row = self._one("event_outcome", {"event_id": event_id})
        if row is None:
            return None
        times = {k: self._time_out(row[k]) for k in (*_OUTCOME_TIMES, "due_at")}
        return EventRecord(**(row | times))

    def claim_idempotency(
        self, key_id: str, idem_key: str, request_hash: str, now: datetime
    ) -> bool:
        """Inside ``transaction()``: claim the key (False: another request holds or held it;
        a concurrent holder is waited for)."""
        params = {"key_id": key_id, "idem_key": idem_key, "request_hash": request_hash}
        return self._w("claim_idempotency", params | {"now": self._time_in(now)}) == 1

    def finish_idempotency(self, key_id: str, idem_key: str, status: int, body: str) -> None:
        params = {"key_id": key_id, "idem_key": idem_key, "status": status, "body": body}
        self._w("finish_idempotency", params)

    def stored_answer(self, key_id: str, idem_key: str) -> StoredAnswer | None:
        row = self._one("get_idempotency", {"key_id": key_id, "idem_key": idem_key})
        if row is None:
            return None
        created = self._time_out(row["created_at"])
        assert created is not None  # NOT NULL
        return StoredAnswer(row["request_hash"], int(row["status"]), row["body"], created)

    def purge_idempotency(self, before: datetime) -> int:
        """Drop every answer given before ``before``; how many."""
        return self._w("purge_idempotency", {"before": self._time_in(before)})

    def forget_idempotency(self, key_id: str, idem_key: str, before: datetime) -> bool:
        """Drop the key's answer if it was given before ``before`` (its retention is over)."""
        params = {"key_id": key_id, "idem_key": idem_key, "before": self._time_in(before)}
        return self._w("forget_idempotency", params) == 1

    # conversations (negotiation) ---------------------------------------------------------------
    def conversation(self, session_id: str, user_id: str, limit: int = 20) -> Conversation:
        """A session's newest turns (oldest first) and the customer's live offer, in one
        snapshot."""
        with self._snapshot():
            rows = self._q("conversation_turns", {"session_id": session_id, "limit": limit})
            live = self._one("live_offer", {"user_id": user_id})
        turns = tuple(self._turn(r) for r in rows)
        return Conversation(turns, self._live(live) if live else None)

    def live_offer(self, user_id: str) -> LiveOffer | None:
        row = self._one("live_offer", {"user_id": user_id})
        return self._live(row) if row else None

    def _live(self, row: dict[str, Any]) -> LiveOffer:
        data = dict(row)
        for name in ("expires_at", "redeemed_at", "created_at"):
            data[name] = self._time_out(data[name])
        return LiveOffer(**data)

    def _turn(self, row: dict[str, Any]) -> Turn:
        times = {k: self._time_out(row[k]) for k in ("created_at", "published_at")}
        return Turn.from_row(row | times)

    def insert_turn(self, turn: Turn) -> int | None:
        """Record a turn under the session's next number (returned); None if the event already
        has its turn. Inside a transaction the session's numbering is locked first (hosts never
        compute the same next number)."""
        if self._in_transaction():
            self._lock(f"turns:{turn.session_id}")
        row = turn.row()
        row["created_at"] = self._time_in(row["created_at"])
        row["published_at"] = self._time_in(row["published_at"])
        got = self._one("insert_turn", self._clean(row))
        return int(got["turn"]) if got else None

    def get_turn(self, event_id: str) -> Turn | None:
        row = self._one("get_turn", {"event_id": event_id})
        return self._turn(row) if row else None

    def void_offer(self, offer_id: str, superseded_by: str, now: datetime) -> bool:
        """A counter-offer replaces ``offer_id``: its code can no longer be redeemed. A redeemed
        offer is never voided (False, as for one already void)."""
        params = {"offer_id": offer_id, "superseded_by": superseded_by, "now": self._time_in(now)}
        return self._w("void_offer", params) == 1

    def mark_turn_published(self, event_id: str, now: datetime) -> None:
        self._w("mark_turn_published", {"event_id": event_id, "now": self._time_in(now)})

    def unpublished_turns(self, limit: int = 100) -> list[Turn]:
        return [self._turn(r) for r in self._q("unpublished_turns", {"limit": limit})]

    def recently_published_turns(self, since: datetime) -> list[Turn]:
        rows = self._q("recently_published_turns", {"since": self._time_in(since)})
        return [self._turn(r) for r in rows]

    # cart recovery (docs/recovery.md) ---------------------------------------------------------
    def schedule_decision(
        self, event_id: str, session_id: str, user_id: str, payload: str,
        occurred_at: datetime, due_at: datetime, deferred: str | None, now: datetime,
    ) -> bool:  # fmt: skip
        """Record that an abandonment's decision waits until ``due_at`` (inside the runner's
        transaction); False if the event was scheduled already."""
        params = {
            "event_id": event_id, "session_id": session_id, "user_id": user_id,
            "payload": payload, "occurred_at": self._time_in(occurred_at),
            "due_at": self._time_in(due_at), "deferred": deferred, "now": self._time_in(now),
        }  # fmt: skip
        return self._w("insert_schedule", self._clean(params)) == 1

    def claim_due(
        self, event_ids: list[str], claimant: str, now: datetime, lease_s: float
    ) -> list[tuple[str, str, datetime, int]]:
        """Claim these due decisions for ``claimant`` (a job id) for ``lease_s`` seconds, in one
        transaction: ``(event_id, payload, due_at, claims so far)`` of those not decided and not
        held by another live claim. A decision is claimed by one job at a time; its outcome is
        recorded once."""
        if not event_ids:
            return []
        params = {
            "event_ids": self._list_in(list(event_ids)),
            "claimant": claimant,
            "now": self._time_in(now),
            "claimed_before": self._time_in(now - timedelta(seconds=lease_s)),
        }
        with self.transaction():
            rows = self._q("claim_due", params)
        out = []
        for r in rows:
            due = self._time_out(r["due_at"])
            assert due is not None  # NOT NULL
            out.append((r["event_id"], r["payload"], due, int(r["claims"])))
        return out

    def reschedule_decision(self, event_id: str, due_at: datetime, deferred: str | None) -> bool:
        """A claimed decision waits again until ``due_at`` (its claim released)."""
        params = {"event_id": event_id, "due_at": self._time_in(due_at), "deferred": deferred}
        return self._w("reschedule_decision", params) == 1

    def mark_decided(self, event_id: str, now: datetime) -> bool:
        """The waiting decision is taken (inside the transaction that records its outcome)."""
        return self._w("mark_decided", {"event_id": event_id, "now": self._time_in(now)}) == 1

    def undecided_due(
        self, until: datetime, now: datetime, lease_s: float, limit: int = 10_000
    ) -> list[tuple[str, datetime]]:
        """Decisions for the Redis due set (``worker/schedule.py``): not decided, due before
        ``until``, without a live claim; ``(event_id, due_at)``, soonest first."""
        params = {
            "until": self._time_in(until),
            "claimed_before": self._time_in(now - timedelta(seconds=lease_s)),
            "limit": limit,
        }
        out = []
        for r in self._q("undecided_due", params):
            due = self._time_out(r["due_at"])
            assert due is not None
            out.append((r["event_id"], due))
        return out

    def record_order(self, row: dict[str, Any], now: datetime) -> bool:
        """Keep an order_completed (its order block: id, value, currency, code, and
        ``code_refused``: why its code was not redeemed, if it was not) for attribution; False if
        it was recorded already."""
        params = {"code_refused": None} | row
        params |= {"occurred_at": self._time_in(row["occurred_at"]), "now": self._time_in(now)}
        return self._w("insert_order", self._clean(params)) == 1

    def get_order(self, event_id: str) -> dict[str, Any] | None:
        """The order an ``order_completed`` left (``record_order``'s row, times as ``datetime``);
        None if none was kept."""
        row = self._one("get_order", {"event_id": event_id})
        if row is None:
            return None
        return row | {k: self._time_out(row[k]) for k in ("occurred_at", "recorded_at")}

    def void_for_order(
        self, event_id: str, user_id: str, code: str | None, now: datetime
    ) -> list[VoidNotice]:
        """An order closes the customer's live offers (all but the one whose ``code`` it used):
        each is voided (reason ``order_completed``) and its notice returned, for the outbox."""
        params = {"event_id": event_id, "user_id": user_id, "code": code, "now": self._time_in(now)}
        voided = [r["offer_id"] for r in self._q("void_for_order", self._clean(params))]
        return [n for offer_id in voided for n in self.void_notices(offer_id=offer_id)]

    def void_notices(self, limit: int = 100, offer_id: str | None = None) -> list[VoidNotice]:
        """Void notices not yet published (all, or the one of ``offer_id``)."""
        rows = self._q("void_notices", {"limit": limit, "offer_id": offer_id})
        out = []
        for r in rows:
            voided = self._time_out(r["voided_at"])
            assert voided is not None
            out.append(VoidNotice(**(r | {"voided_at": voided})))
        return out

    def mark_void_published(self, offer_id: str, now: datetime) -> None:
        self._w("mark_void_published", {"offer_id": offer_id, "now": self._time_in(now)})

    def abandoner_stats(
        self, user_id: str, since: datetime, event_id: str = ""
    ) -> tuple[int, int, int]:
        """The customer's offers, abandonments and redeemed codes since ``since`` (the
        repeat-abandoner rules)."""
        params = {"user_id": user_id, "since": self._time_in(since), "event_id": event_id}
        row = self._one("abandoner_stats", params)
        assert row is not None
        return int(row["offers"]), int(row["abandonments"]), int(row["redeemed"])

    def attribution(
        self, window_hours: float, now: datetime, since: datetime | None = None
    ) -> list[dict[str, Any]]:
        """Attribution per offer created since ``since`` (all when None): ``attribution`` is
        ``redeemed`` (its code was used), ``converted`` (an order within ``window_hours`` without
        the code) or ``not_converted``; with the order counted (``order_event_id``,
        ``order_id``, ``order_value``, ``order_currency``) and ``window_closed`` (the verdict is
        final). ``sql/hot/<dialect>/attribution.sql``; docs/recovery.md."""
        params = {
            "window_hours": float(window_hours),
            "now": self._time_in(now),
            "since": self._time_in(since or datetime(2000, 1, 1, tzinfo=UTC)),
        }
        rows = self._q("attribution", params)
        return [
            r
            | {
                "created_at": self._time_out(r["created_at"]),
                "window_closed": bool(r["window_closed"]),
            }  # fmt: skip
            for r in rows
        ]

    # reports -----------------------------------------------------------------------------------
    # the holdout experiment (docs/lift.md)
    def record_eligible(self, cart: EligibleCart, holdout_share: float) -> None:
        """An eligible abandonment of the experiment (the experiment itself recorded the first
        time), in the event's transaction; a replay writes nothing."""
        self._w(
            "insert_experiment",
            {
                "experiment": cart.experiment,
                "holdout_share": holdout_share,
                "started_at": self._time_in(cart.decided_at),
            },
        )
        row = cart.row()
        row["decided_at"] = self._time_in(cart.decided_at)
        self._w("insert_lift_cart", self._clean(row))

    def last_holdout_at(self, user_id: str, experiment: str) -> datetime | None:
        row = self._one("last_holdout_for_user", {"user_id": user_id, "experiment": experiment})
        return self._time_out(row["last_at"]) if row else None

    def attribute_order(
        self, user_id: str, order_event_id: str, value: float, at: datetime, window: timedelta
    ) -> bool:
        """The order attributed to the customer's latest eligible cart within ``window`` before
        it; False when there is none."""
        params = {
            "user_id": user_id,
            "order_event_id": order_event_id,
            "order_value": value,
            "ordered_at": self._time_in(at),
            "since": self._time_in(at - window),
        }
        return self._w("attribute_order", params) > 0

    def lift_rows(self, experiment: str, since: datetime) -> list[CartRow]:
        rows = self._q("lift_rows", {"experiment": experiment, "since": self._time_in(since)})
        return [
            CartRow(
                group=r["grp"],
                segment=r["segment"],
                converted=r["order_value"] is not None,
                order_value=float(r["order_value"] or 0.0),
                margin=float(r["margin"]),
                discount_pct=float(r["discount_used"] or 0.0),
            )
            for r in rows
        ]

    def eligible_carts(self, experiment: str) -> list[dict[str, Any]]:
        """The experiment's eligible carts not yet followed by an order (the simulated world)."""
        return [
            {**r, "decided_at": self._time_out(r["decided_at"])}
            for r in self._q("eligible_carts", {"experiment": experiment})
        ]

    def experiments(self) -> list[dict[str, Any]]:
        return [
            {**r, "started_at": self._time_out(r["started_at"])} for r in self._q("experiments")
        ]

    def summary(self) -> dict[str, int]:
        row = self._one("demo_summary")
        assert row is not None
        return {k: int(v) for k, v in row.items()}

    def offers_by_engine(self) -> dict[str, int]:
        rows = self._q("offers_by_engine")
        return {f"{r['engine']}:{r['model']}" if r["model"] else r["engine"]: r["n"] for r in rows}

    def rules_engine_reasons(self) -> list[str | None]:
        """The problems recorded with each offer the rules engine wrote (None: nothing failed)."""
        return [r["error"] for r in self._q("rules_engine_offers")]

    def sample_offers(self, limit: int = 8) -> list[dict[str, Any]]:
        rows = self._q("sample_offers", {"limit": limit})
        return [r | {"reasoning": json.loads(r["reasoning"])} for r in rows]

    def largest_offer(self) -> dict[str, float] | None:
        return self._one("largest_offer")
