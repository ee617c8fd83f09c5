"""What one PostgreSQL costs and carries, measured: ``python -m testbench.pgcost``.

1. History lookups: a host's snapshot file (``stores.history.HistorySnapshot``) against the
   ``customer_history`` table in PostgreSQL (``stores.pg_history.PostgresHistory``), microseconds
   per lookup (median and p99 of single lookups of known and unknown customers).
2. The hot store's share of an event, for each backend and 1, 2, 4 writer processes: the
   pipeline's read (``event_context``) and its one commit transaction (``apply_event``,
   ``last_offer_at`` with the customer's lock, ``record_outcome``, ``insert_offer`` for one event
   in three), as events per second over all processes.

PostgreSQL: ``--url`` (a server; the run makes its own database and drops it), else the one of
testbench/pgproc.py. It prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from producers.synthetic import customers
from stores.hot import open_hot_store
from stores.pg_history import PostgresHistory, write_pg_history
from testbench.pgproc import fresh_database, postgres_server
from worker.domain.codes import new_code, new_offer_id
from worker.domain.model import Offer
from worker.domain.timefmt import to_text

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def _lookup_us(source: Any, users: list[str]) -> dict[str, float]:
    times = []
    for user in users:
        started = time.perf_counter()
        source.history(user)
        times.append((time.perf_counter() - started) * 1e6)
    times.sort()
    return {
        "median_us": round(statistics.median(times), 1),
        "p99_us": round(times[int(len(times) * 0.99)], 1),
    }


def history_costs(pg_url: str, folder: Path, count: int, lookups: int) -> dict[str, Any]:
    from stores.history import HistorySnapshot, write_snapshot

    rows = customers(count, seed=5, now=NOW)
    write_snapshot(folder / "history.sqlite", rows, folder / "none", 0)
    write_pg_history(pg_url, rows)
    rng = random.Random(1)
    users = [rows[rng.randrange(count)][0] if i % 10 else f"new-{i}" for i in range(lookups)]
    snapshot, pg = HistorySnapshot(folder / "history.sqlite"), PostgresHistory(pg_url)
    _lookup_us(snapshot, users[:200]), _lookup_us(pg, users[:200])  # warm up
    out = {"snapshot": _lookup_us(snapshot, users), "postgres": _lookup_us(pg, users)}
    snapshot.close()
    pg.close()
    return out


def _writer(url: str, path: str, prefix: str, events: int, start: Any, out: Any) -> None:
    hot = open_hot_store(url, Path(path))
    start.wait(120)
    started = time.perf_counter()
    for i in range(events):
        at = NOW + timedelta(milliseconds=i)
        user, session, event_id = f"{prefix}-u{i % 200}", f"{prefix}-s{i}", f"{prefix}-e{i}"
        params = {
            "session_id": session,
            "user_id": user,
            "status": "abandoned",
            "cart_value": 120.0,
            "margin": 0.4,
            "currency": "EUR",
            "inventory": "in_stock",
            "event_id": event_id,
            "occurred_at": to_text(at),
        }
        hot.event_context(event_id, session, user)
        with hot.transaction():
            hot.apply_event(params, at)
            hot.last_offer_at(user)
            offer_id = new_offer_id() if i % 3 == 0 else None
            hot.record_outcome(
                event_id=event_id,
                session_id=session,
                user_id=user,
                type="cart_abandoned",
                outcome="offer" if offer_id else "no_offer",
                reason=None if offer_id else "offer_window",
                offer_id=offer_id,
                finished_at=at,
                timings={"state": 0.1},
            )
            if offer_id:
                hot.insert_offer(_offer(offer_id, event_id, session, user, at))
    out.put(time.perf_counter() - started)
    hot.close()


def _offer(offer_id: str, event_id: str, session: str, user: str, at: datetime) -> Offer:
    return Offer(
        offer_id=offer_id,
        event_id=event_id,
        session_id=session,
        user_id=user,
        currency="EUR",
        cart_value=120.0,
        margin=0.4,
        segment="mid_churn",
        cap_pct=10.0,
        discount_pct=7.5,
        code=new_code(),
        expires_at=at + timedelta(hours=48),
        engine="policy",
        model=None,
        reasoning={"pricing": {"discount_percent": 7.5}},
        message="A little something for your cart.",
        guardrail=None,
        created_at=at,
    )


def commit_rate(url: str, path: Path, procs: int, events: int) -> float:
    """Events per second of ``procs`` processes writing ``events`` each, all at once."""
    open_hot_store(url, path).close()
    ctx = multiprocessing.get_context("spawn")
    start, out = ctx.Barrier(procs), ctx.Queue()
    workers = [
        ctx.Process(target=_writer, args=(url, str(path), f"p{procs}w{n}", events, start, out))
        for n in range(procs)
    ]
    for worker in workers:
        worker.start()
    elapsed = [out.get(timeout=600) for _ in workers]
    for worker in workers:
        worker.join(60)
    return round(procs * events / max(elapsed), 1)


def measure(server_url: str, count: int, lookups: int, events: int) -> dict[str, Any]:
    report: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp, fresh_database(server_url, "sgr_cost_") as url:
        folder = Path(tmp)
        report["history_lookup"] = history_costs(url, folder, count, lookups)
        rates: dict[str, dict[str, float]] = {"sqlite": {}, "postgres": {}}
        for procs in (1, 2, 4):
            rates["sqlite"][str(procs)] = commit_rate(
                "", folder / f"hot{procs}.sqlite", procs, events
            )
            rates["postgres"][str(procs)] = commit_rate(url, folder / "unused", procs, events)
        report["hot_store_events_per_s"] = rates
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="History lookups and hot-store commit rates.")
    parser.add_argument("--url", default="", help="a PostgreSQL server (default: testbench/pgproc)")
    parser.add_argument("--customers", type=int, default=5000)
    parser.add_argument("--lookups", type=int, default=5000)
    parser.add_argument("--events", type=int, default=500, help="events per writer process")
    args = parser.parse_args(argv)
    if args.url:
        report = measure(args.url, args.customers, args.lookups, args.events)
    else:
        with postgres_server() as url:
            report = measure(url, args.customers, args.lookups, args.events)
    sys.stdout.write(json.dumps(report) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
