"""Customer history in PostgreSQL: the alternative to each host's snapshot file on a fleet, kept
for measurement (``python -m testbench.pgcost``). The fleet reads snapshots (README: Fleet): a
lookup there costs microseconds and no network, and PostgreSQL keeps its connections and CPU for
the hot store. ``PostgresHistory`` is a ``HistorySource``, so a deployment that would rather keep
one copy can wire it where ``worker/runtime.open_history`` chooses."""

from __future__ import annotations

from collections.abc import Iterable

import psycopg

from stores.sqlfiles import sql
from worker.domain.model import CustomerRow, History


class PostgresHistory:
    """Point lookups in the ``customer_history`` table, on one connection of its own."""

    def __init__(self, url: str) -> None:
        self.conn = psycopg.connect(url, autocommit=True)
        self._get = sql("history_pg/get_customer")

    def history(self, user_id: str) -> History | None:
        row = self.conn.execute(self._get, {"user_id": user_id}, prepare=True).fetchone()
        if row is None:
            return None
        uid, ltv, churn, cadence, orders, last = row
        return History(uid, float(ltv), float(churn), cadence, int(orders), last)

    def close(self) -> None:
        self.conn.close()


def write_pg_history(url: str, rows: Iterable[CustomerRow]) -> int:
    """Create the table if needed and upsert these customers (one transaction); how many."""
    with psycopg.connect(url) as conn, conn.transaction():
        conn.execute(sql("history_pg/schema"))
        batch = list(rows)
        with conn.cursor() as cur:
            cur.executemany(sql("history_pg/insert_customer"), batch)
    return len(batch)
