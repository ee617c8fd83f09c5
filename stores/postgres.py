"""The hot store on PostgreSQL (psycopg 3 and a psycopg_pool connection pool): the backend for a
fleet of hosts that share one database (``SGR_HOT_STORE_URL=postgresql://...``).

The same guarantees as ``stores/sqlite.py``, given by the database to workers on any host:

- one transaction per event for its state, its outcome and its offer (``transaction()``; READ
  COMMITTED, and every call inside it goes through the transaction's one connection);
- idempotency: ``processed_events.event_id`` is the primary key and ``record_outcome`` inserts
  with ``ON CONFLICT DO NOTHING``; a second writer of the same event waits for the first one's
  transaction and then records nothing (``offers.event_id`` is unique too);
- the offer window: ``lock_customer`` (and ``last_offer_at`` inside a transaction, which calls
  it) takes a transaction-level advisory lock on the customer
  (``pg_advisory_xact_lock(hashtext(user_id))``, held until COMMIT or ROLLBACK); the next
  statement, READ COMMITTED, has a new snapshot that sees every offer committed by whoever held
  the lock before. So two hosts never both decide money for one customer at once;
- the outbox: offers carry ``published_at``, as in SQLite.

This file holds the primitives only; the queries are ``stores/hotstore.py``'s, from ``sql/hot``
(``:name`` parameters, converted to psycopg's ``%(name)s`` by ``stores/sqlfiles.py``) and
``sql/hot/postgres`` where the SQL differs.
"""

from __future__ import annotations

import select
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any, ClassVar
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg.pq import ExecStatus
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool, PoolTimeout

from stores.base import StoreTransient, StoreUnavailable
from stores.hotstore import SqlHotStore
from stores.sqlfiles import sql

POOL_MAX = 4  # a worker process runs one job at a time; the reaper thread and tools take a few
CONNECT_TIMEOUT_S = 10
RECONNECT_TIMEOUT_S = 60.0
# Errors of one transaction, not of the database: the job fails and RQ retries it.
_RETRYABLE = (
    psycopg.errors.DeadlockDetected,
    psycopg.errors.SerializationFailure,
    psycopg.errors.TransactionRollback,
    psycopg.errors.QueryCanceled,
    psycopg.errors.LockNotAvailable,
)
# Errors of the database being reachable but refusing us for good (wrong password, no such role
# or database): fatal, a restart with the same settings gets the same answer. Every other
# connection error (refused, closed by the server, ``the database system is starting up``, too
# many connections, a pool timeout) is transient: the caller retries (stores.base.StoreTransient).
_FATAL_SQLSTATES = frozenset({"28000", "28P01", "3D000"})
# libpq's words for the same when connecting (psycopg gives no SQLSTATE before the session exists)
_FATAL_WORDS = ("password authentication failed", "does not exist", "no pg_hba.conf entry")
# Times in UTC; a transaction left open by a host that froze or lost its network is ended by the
# server after 30 s (no transaction here waits on anything but the database: the LLM is asked
# before the commit), so its locks (a customer's offer window, a session's row) are not held on.
SESSION_OPTIONS = "-c TimeZone=UTC -c idle_in_transaction_session_timeout=30000"


class PostgresHotStore(SqlHotStore):
    """Sessions, processed events and offers in one PostgreSQL database, shared by hosts."""

    dialect: ClassVar[str] = "postgres"
    paramstyle: ClassVar[str] = "pyformat"

    def __init__(
        self,
        url: str,
        pool_max: int = POOL_MAX,
        *,
        migrate: bool = True,
        statement_timeout_ms: int | None = None,
        connect_timeout_s: float = CONNECT_TIMEOUT_S,
    ) -> None:
        self.where = _where(url)
        self._local = threading.local()
        self._password = _password(url)
        try:
            # a first connection of its own: a server that is down or refuses is said at once,
            # in its own words (the pool only says it gave up after its timeout)
            wait = max(1, round(connect_timeout_s))
            psycopg.connect(url, connect_timeout=wait, autocommit=True).close()
            options = SESSION_OPTIONS
            if statement_timeout_ms is not None:
                options += f" -c statement_timeout={int(statement_timeout_ms)}"
            self.pool = ConnectionPool(
                url,
                min_size=1,
                max_size=pool_max,
                kwargs={
                    "autocommit": True,
                    "row_factory": dict_row,
                    "options": options,
                    "connect_timeout": wait,
                },
                timeout=connect_timeout_s,
                # Refilling after the server went away backs off 1, 2, 4, ... s and gives up after
                # this long (then a request grows the pool again): a minute keeps the longest
                # wait after the server is back at about half a minute.
                reconnect_timeout=RECONNECT_TIMEOUT_S,
                open=False,
                name="sgr-hot",
            )
            self.pool.open(wait=True, timeout=connect_timeout_s)
        except (psycopg.Error, PoolTimeout, OSError) as exc:
            raise self._error(exc, "") from None
        if not migrate:
            return
        try:
            self.migrate()
        except psycopg.Error as exc:
            self.pool.close()
            raise self._error(exc, "") from None
        except BaseException:
            self.pool.close()
            raise

    def _scrub(self, exc: BaseException) -> str:
        text = " ".join(str(exc).split()) or type(exc).__name__
        return text.replace(self._password, "***") if self._password else text

    def _error(self, exc: BaseException, what: str) -> StoreUnavailable:
        """The error as the store's: fatal (``StoreUnavailable``) when the server refuses these
        settings for good, else ``StoreTransient``."""
        text = f"hot store {self.where}{what}: {self._scrub(exc)}"
        said = str(exc)
        if getattr(exc, "sqlstate", None) in _FATAL_SQLSTATES or any(
            w in said for w in _FATAL_WORDS
        ):
            return StoreUnavailable(text)
        return StoreTransient(text)

    def close(self) -> None:
        self.pool.close()

    # connections ------------------------------------------------------------------------------
    @contextmanager
    def _unavailable(self) -> Iterator[None]:
        """The database gone (down, restarting, failed over, our connection closed, the pool
        exhausted) is the store being unavailable for a moment (``StoreTransient``): the job is
        retried with backoff and the worker goes on. A deadlock or serialization failure is one
        transaction's: the job is retried by RQ. A store already mapped passes as it is."""
        try:
            yield
        except _RETRYABLE:
            raise
        except StoreUnavailable:
            raise
        except (psycopg.OperationalError, psycopg.InterfaceError, PoolTimeout) as exc:
            raise self._error(exc, " unavailable") from None

    @contextmanager
    def _pooled(self) -> Iterator[psycopg.Connection[dict[str, Any]]]:
        """A pooled connection, checked before use: one the server closed while it sat in the
        pool (a restart, a failover, ``pg_terminate_backend``) goes back to be replaced, and the
        next one is tried at once. The check costs no round trip while the connection is quiet
        (``_quiet``); only one on which something arrived gets psycopg_pool's
        ``check_connection`` (an empty round trip). Not the pool's own ``check=``: on a failed
        check it sleeps 1, 2, 4, ... s within the one request, which starves a job while
        connections keep being closed."""
        for _ in range(self.pool.max_size + 1):
            conn = self.pool.getconn()
            if not _quiet(conn):
                try:
                    ConnectionPool.check_connection(conn)
                except psycopg.Error:
                    self.pool.putconn(conn)  # broken: the pool discards it and opens another
                    continue
            try:
                yield conn  # type: ignore[misc]
            finally:
                self.pool.putconn(conn)
            return
        raise StoreTransient(f"hot store {self.where} unavailable: every pooled connection broken")

    @contextmanager
    def _conn(self) -> Iterator[psycopg.Connection[dict[str, Any]]]:
        """The current transaction's connection, or one from the pool (autocommit) for a call."""
        current = getattr(self._local, "conn", None)
        if current is not None:  # a connection lost mid-transaction is the store's, not the event's
            with self._unavailable():
                yield current
            return
        with self._unavailable(), self._pooled() as conn:
            yield conn  # type: ignore[misc]

    @contextmanager
    def transaction(self) -> Iterator[psycopg.Connection[dict[str, Any]]]:
        """One transaction on one pooled connection; every call of this thread inside it uses it."""
        if getattr(self._local, "conn", None) is not None:
            raise RuntimeError("hot store: nested transaction")
        with self._unavailable(), self._pooled() as conn, conn.transaction():
            self._local.conn = conn
            try:
                yield conn  # type: ignore[misc]
            finally:
                self._local.conn = None

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        """Inside ``transaction()``: the writes of the block are undone alone if it raises (one
        event of a batch failing leaves the others' writes in the transaction)."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            raise RuntimeError("hot store: savepoint outside a transaction")
        with self._unavailable(), conn.transaction():  # nested: SAVEPOINT, RELEASE, ROLLBACK TO
            yield

    def _in_transaction(self) -> bool:
        return getattr(self._local, "conn", None) is not None

    def _lock(self, key: str) -> None:
        self._write(self._text("hot", "lock_key"), {"key": key})

    @contextmanager
    def _snapshot(self) -> Iterator[None]:
        if self._in_transaction():  # already inside the caller's transaction
            yield
            return
        with self._unavailable(), self._pooled() as conn, conn.transaction():
            conn.execute(sql("hot/postgres/read_snapshot"))
            self._local.conn = conn
            try:
                yield
            finally:
                self._local.conn = None

    def _rows(self, text: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        with self._conn() as conn:
            cursor = conn.execute(text, params or {})  # a dict always: %% means % (pyformat)
            # rows only from a statement that returns them (not ``description``: it builds a
            # Column per field at every call, tens of microseconds of a redemption)
            result = cursor.pgresult
            returned = result is not None and result.status == ExecStatus.TUPLES_OK
            return cursor.fetchall() if returned else []

    def _write(self, text: str, params: dict[str, Any]) -> int:
        with self._conn() as conn:
            return conn.execute(text, params).rowcount

    def _script(self, text: str) -> None:
        with self._conn() as conn:
            conn.execute(text)  # type: ignore[arg-type]  # no parameters: several statements

    @staticmethod
    def _time_in(value: datetime | str | None) -> datetime | None:
        return datetime.fromisoformat(value) if isinstance(value, str) else value

    @staticmethod
    def _time_out(value: Any) -> datetime | None:
        return value  # type: ignore[no-any-return]  # timestamptz: an aware datetime

    @staticmethod
    def _text_in(value: Any) -> Any:
        """PostgreSQL text cannot hold NUL characters (SQLite can): they become U+FFFD."""
        return value.replace("\x00", "\ufffd") if isinstance(value, str) else value

    @staticmethod
    def _list_in(values: list[str]) -> list[str]:
        return values


def _quiet(conn: psycopg.Connection[Any]) -> bool:
    """Whether an idle connection is as its last answer left it: open, and nothing to read. An
    idle autocommit connection (no LISTEN here) is sent nothing unasked but a server's goodbye:
    the FATAL of ``pg_terminate_backend`` or of a shutdown, then the socket's end; either makes
    it readable. One poll of the socket, no round trip (about 1 us against 75 us of CPU and 120
    us of waiting for ``check_connection``, per statement of every request and job). A peer that
    vanished without a word is found by neither check: the statement's own error says it."""
    if conn.closed or conn.broken:
        return False
    poller = select.poll()
    poller.register(conn.fileno(), select.POLLIN | select.POLLPRI)
    return not poller.poll(0)


def _where(url: str) -> str:
    """The URL as messages name the store: no user, password or query (``sslkey``, ...), only
    where it is (the stores import nothing of the worker but its domain, so not
    ``worker.settings.redact_url``, which keeps a query's harmless values)."""
    if "://" not in url:  # libpq's key/value form: named by its place, as a URL
        try:
            pairs = psycopg.conninfo.conninfo_to_dict(url)
        except psycopg.Error:
            return "postgresql://<unparseable key/value DSN>"
        host, port, db = (pairs.get(k) or "" for k in ("host", "port", "dbname"))
        return f"postgresql://***@{host}{':' if port else ''}{port}/{db}"
    parts = urlsplit(url)
    netloc = parts.netloc if "@" not in parts.netloc else "***@" + parts.netloc.rsplit("@", 1)[1]
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def _password(url: str) -> str | None:
    try:
        return psycopg.conninfo.conninfo_to_dict(url).get("password") or None  # type: ignore[return-value]
    except psycopg.Error:
        return None
