"""The cold store: customer history in DuckDB. The source of the history snapshot that workers
read (``stores/history.py``), and a history source itself (``SGR_HISTORY_SOURCE=duckdb``)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

import duckdb

from stores.sqlfiles import sql
from worker.domain.model import CustomerRow, History


class ColdStore:
    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise FileNotFoundError(f"cold store {self.path} does not exist: run `sgr setup-data`")
        self.conn = duckdb.connect(str(self.path), read_only=True)
        self.conn.execute(sql("cold/reader_settings"))
        self._get = sql("cold/get_customer")

    def close(self) -> None:
        self.conn.close()

    def history(self, user_id: str) -> History | None:
        """The customer's history, or None for a customer the store does not know (new)."""
        row = self.conn.execute(self._get, [user_id]).fetchone()
        if row is None:
            return None
        uid, ltv, churn, cadence, orders, last = row
        return History(uid, float(ltv), float(churn), cadence, int(orders), last)


def write_history(
    path: Path | str,
    customers: Iterable[CustomerRow],
) -> int:
    """(Re)create the cold store with these customers; returns how many were written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = list(customers)
    with duckdb.connect(str(path)) as conn:
        conn.execute(sql("cold/schema"))
        conn.executemany(sql("cold/insert_customer"), rows)
    return len(rows)


def export_history(path: Path | str, batch: int = 10_000) -> Iterator[CustomerRow]:
    """Every customer's features, in batches (for ``sgr history sync``)."""
    with duckdb.connect(str(path), read_only=True) as conn:
        cur = conn.execute(sql("cold/export_customers"))
        while rows := cur.fetchmany(batch):
            yield from rows


def summary(path: Path | str) -> dict[str, float]:
    with duckdb.connect(str(path), read_only=True) as conn:
        cur = conn.execute(sql("cold/summary"))
        names = [d[0] for d in cur.description]
        row = cur.fetchone()
    return dict(zip(names, row or (), strict=False))


# The archive (rows retention moved out of the hot store): each table's columns in the order of
# sql/cold/archive_schema.sql, the last one ``archived_at``; tests/unit/test_retention.py checks
# them against both hot stores' tables.
ARCHIVE_COLUMNS: dict[str, tuple[str, ...]] = {
    "processed_events": (
        "event_id", "session_id", "user_id", "type", "outcome", "reason", "offer_id", "error",
        "attempts", "occurred_at", "enqueued_at", "started_at", "finished_at", "timings",
        "published_at", "error_kind",
    ),
    "offers": (
        "offer_id", "event_id", "session_id", "user_id", "currency", "cart_value", "margin",
        "segment", "cap_pct", "discount_pct", "code", "expires_at", "engine", "model",
        "reasoning", "message", "guardrail", "created_at", "published_at", "redeemed_at",
        "redeemed_order_id",
    ),
    "turns": (
        "event_id", "session_id", "turn", "user_id", "message", "route", "reason", "reply",
        "reasoning", "offer_id", "discount_pct", "cap_pct", "code", "engine", "model",
        "problems", "created_at", "published_at",
    ),
    "offer_voids": ("offer_id", "superseded_by", "voided_at", "reason", "published_at"),
}  # fmt: skip


def _cell(value: object) -> object:
    return value.isoformat() if hasattr(value, "isoformat") else value


class Archive:
    """The cold store's archive, opened for writing (DuckDB allows one writer: run retention
    where the cold store lives, and not while a process reads it with SGR_HISTORY_SOURCE=duckdb)."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise FileNotFoundError(f"cold store {self.path} does not exist: run `sgr setup-data`")
        self.conn = duckdb.connect(str(self.path))
        self.conn.execute(sql("cold/archive_schema"))

    def close(self) -> None:
        self.conn.close()

    def add(self, table: str, rows: list[dict[str, object]], archived_at: str) -> None:
        """Keep ``rows`` of the hot store's ``table`` (a row kept before stays as it was)."""
        if not rows:
            return
        columns = ARCHIVE_COLUMNS[table]
        values = [[_cell(row[c]) for c in columns] + [archived_at] for row in rows]
        marks = ", ".join("?" for _ in range(len(columns) + 1))
        self.conn.execute("BEGIN TRANSACTION")
        self.conn.executemany(
            f"INSERT OR IGNORE INTO archived_{table} VALUES ({marks})",  # noqa: S608
            values,
        )
        self.conn.execute("COMMIT")

    def counts(self) -> dict[str, int]:
        cur = self.conn.execute(sql("cold/archive_counts"))
        names = [d[0] for d in cur.description]
        row = cur.fetchone() or ()
        return {n: int(v) for n, v in zip(names, row, strict=False)}
