"""The hot store on SQLite (WAL mode; one connection per process, opened at start-up): the
backend for one host. Its primitives only; the queries are ``stores/hotstore.py``'s.

Locks: ``transaction()`` is ``BEGIN IMMEDIATE``, which takes the file's one write lock up front,
so writers (hence money decisions, and migrations) are serialized across processes already:
``_lock`` (behind ``lock_customer``) has nothing more to do.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar

from stores.base import StoreMissing, StoreUnavailable
from stores.hotstore import SqlHotStore
from worker.domain.timefmt import from_text, to_text


def _unwritable(exc: sqlite3.Error) -> bool:
    text = str(exc).lower()
    return any(
        s in text for s in ("readonly", "read-only", "disk", "full", "i/o", "unable to open")
    )


class SqliteHotStore(SqlHotStore):
    """Sessions, processed events and offers in one SQLite file."""

    dialect: ClassVar[str] = "sqlite"
    paramstyle: ClassVar[str] = "named"

    def __init__(
        self,
        path: Path | str,
        busy_timeout_ms: int = 10_000,
        *,
        migrate: bool = True,
        create: bool = True,
    ) -> None:
        """Open (``create``: or create, with its folder) the SQLite file at ``path``; without
        ``create`` a missing file raises StoreMissing and nothing is made."""
        self.path = Path(path)
        self.where = str(self.path)
        if not create and not self.path.is_file():
            raise StoreMissing(
                f"no hot store at {self.path}: run `sgr setup-data` first (nothing was created)"
            )
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
            if migrate:
                self.migrate()
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

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        """Inside ``transaction()``: the writes of the block are undone alone if it raises (one
        event of a batch failing leaves the others' writes in the transaction)."""
        self.conn.execute("SAVEPOINT sgr_item")
        try:
            yield
        except (
            sqlite3.OperationalError
        ) as exc:  # full, read-only: the store's fault, not the event's
            self.conn.execute("ROLLBACK TO sgr_item")
            self.conn.execute("RELEASE sgr_item")
            if _unwritable(exc):
                raise StoreUnavailable(f"hot store {self.path} cannot be written: {exc}") from None
            raise
        except BaseException:
            self.conn.execute("ROLLBACK TO sgr_item")
            self.conn.execute("RELEASE sgr_item")
            raise
        self.conn.execute("RELEASE sgr_item")

    def _in_transaction(self) -> bool:
        return self.conn.in_transaction

    def _lock(self, key: str) -> None:
        """Nothing: BEGIN IMMEDIATE already holds the file's write lock until the end."""

    @contextmanager
    def _snapshot(self) -> Iterator[None]:
        if self.conn.in_transaction:  # already inside the caller's transaction
            yield
            return
        self.conn.execute("BEGIN")
        try:
            yield
        finally:
            self.conn.execute("COMMIT")

    def _rows(self, text: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        return [dict(r) for r in self.conn.execute(text, params or {}).fetchall()]

    def _write(self, text: str, params: dict[str, Any]) -> int:
        return self.conn.execute(text, params).rowcount

    def _script(self, text: str) -> None:
        """Statement by statement (``executescript`` would COMMIT the open transaction first)."""
        statement = ""
        for line in text.splitlines(keepends=True):
            statement += line
            if sqlite3.complete_statement(statement):
                self.conn.execute(statement)
                statement = ""
        if statement.strip() and not _comment_only(statement):
            raise sqlite3.ProgrammingError(f"incomplete SQL statement: {statement.strip()[:80]}")

    @staticmethod
    def _time_in(value: datetime | str | None) -> str | None:
        return to_text(value) if isinstance(value, datetime) else value

    @staticmethod
    def _time_out(value: Any) -> datetime | None:
        return from_text(value) if isinstance(value, str) else value

    @staticmethod
    def _list_in(values: list[str]) -> str:
        return json.dumps(values)


def _comment_only(text: str) -> bool:
    return all(not line.strip() or line.strip().startswith("--") for line in text.splitlines())
