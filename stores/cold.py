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
