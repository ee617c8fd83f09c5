"""Retention on real stores (SQLite and PostgreSQL hot stores, a DuckDB cold store, a real
redis-server): old rows move to the cold store and leave the hot store, a live unredeemed offer
and what depends on it stay, dead letters stay, a second pass moves nothing more, the counters do
not go down; the offers stream is trimmed by age and the rejected list by size."""

from __future__ import annotations

import shutil
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import fakeredis
import redis

from stores.cold import ARCHIVE_COLUMNS, Archive
from tests.conftest import Clock, event, make_deps
from worker import deadletter
from worker.deadletter import DeadLetters
from worker.domain.events import parse_event
from worker.keys import Keys
from worker.retention import cutoff_for, move_to_cold, trim_redis
from worker.runner import process
from worker.settings import Settings


def test_the_cutoff_is_never_sooner_than_the_rules_need() -> None:
    now = datetime(2026, 12, 8, tzinfo=UTC)
    assert cutoff_for(Settings(retention_days=0), now) is None  # off: the hot store keeps all
    assert cutoff_for(Settings(retention_days=90), now) == now - timedelta(days=90)
    # 1 day asked, but events up to 30 days old (+ skew) are still accepted: their replay
    short = cutoff_for(Settings(retention_days=1), now)
    assert short is not None and short < now - timedelta(days=30)
    wide = cutoff_for(Settings(retention_days=1, offer_window_hours=24 * 60), now)
    assert wide == now - timedelta(days=60)


def test_old_rows_move_to_the_cold_store_and_live_offers_stay(
    data_dir: Path, tmp_path: Path, hot_store_url: str
) -> None:
    now = datetime.now(UTC)
    old = Clock(now - timedelta(days=100))
    deps = make_deps(data_dir, fakeredis.FakeRedis(), clock=old, hot_store_url=hot_store_url)
    hot = deps.hot

    def offer(event_id: str, user: str, d=deps) -> str:  # type: ignore[no-untyped-def]
        payload = event(event_id=event_id, session=f"s-{event_id}", user=user, at=d.clock())
        outcome = process(parse_event(payload, d.clock()), d)
        assert outcome.offer_id, outcome
        return outcome.offer_id

    expired = offer("old-1", "u000001")
    redeemed = offer("old-2", "u000002")
    offer_row = hot.get_offer(redeemed)
    assert offer_row is not None and hot.redeem(offer_row.code, old())
    live = offer("old-3", "u000003", replace(deps, offer_ttl=timedelta(days=365)))
    letters = DeadLetters(fakeredis.FakeRedis(), "dl")
    deadletter.record(hot, letters, {"event_id": "old-bad"}, "bad", job_id=None, attempts=1, now=old())  # fmt: skip
    old.now = now - timedelta(hours=1)
    recent = offer("new-1", "u000004")
    counts_before = hot.report("metrics", "event_counts")

    cold = tmp_path / "archive" / "cold.duckdb"  # a copy: the session's cold store stays as it is
    cold.parent.mkdir()
    shutil.copyfile(data_dir / "cold.duckdb", cold)
    archive = Archive(cold)
    try:
        cutoff = cutoff_for(Settings(retention_days=30), now)
        assert cutoff is not None
        moved = move_to_cold(hot, archive, cutoff, now)
        assert moved == {"offers": 2, "offer_voids": 0, "turns": 0, "processed_events": 2}
        assert hot.get_offer(expired) is None and hot.get_offer(redeemed) is None
        assert hot.get_offer(live) is not None and hot.get_offer(recent) is not None
        assert hot.get_outcome("old-1") is None and hot.get_outcome("old-2") is None
        assert hot.get_outcome("old-3") is not None  # its offer is live: its replay needs it
        assert hot.get_outcome("old-bad") is not None  # dead letters stay for requeue
        assert hot.live_offer("u000003") is not None
        assert archive.counts() == {
            "processed_events": 2,
            "offers": 2,
            "turns": 0,
            "offer_voids": 0,
        }
        rows = archive.conn.execute(
            "SELECT offer_id, redeemed_at IS NOT NULL FROM archived_offers ORDER BY offer_id"
        ).fetchall()
        assert sorted(rows) == sorted([(expired, False), (redeemed, True)])
        # a second pass has nothing more to move; a row archived twice would stay one
        assert sum(move_to_cold(hot, archive, cutoff, now).values()) == 0
        assert archive.counts()["offers"] == 2
    finally:
        archive.close()
    assert hot.report("metrics", "event_counts") == counts_before  # counters never go down
    hot.close()


def test_archive_columns_are_the_hot_tables_columns(data_dir: Path, hot_store_url: str) -> None:
    deps = make_deps(data_dir, fakeredis.FakeRedis(), hot_store_url=hot_store_url)
    process(parse_event(event(event_id="c1"), deps.clock()), deps)
    for table in ("processed_events", "offers"):
        row = deps.hot.query(f"SELECT * FROM {table} LIMIT 1")[0]  # noqa: S608
        assert set(row) == set(ARCHIVE_COLUMNS[table]), table
    columns = {r["column_name"] for r in _columns(deps.hot, "turns")}
    assert columns == set(ARCHIVE_COLUMNS["turns"])
    assert {r["column_name"] for r in _columns(deps.hot, "offer_voids")} == set(
        ARCHIVE_COLUMNS["offer_voids"]
    )
    deps.hot.close()


def _columns(hot, table: str) -> list[dict[str, str]]:  # type: ignore[no-untyped-def]
    if hot.dialect == "sqlite":
        return [{"column_name": r["name"]} for r in hot.query(f"PRAGMA table_info({table})")]
    return list(
        hot.query(
            "SELECT column_name FROM information_schema.columns WHERE table_name = :t",
            {"t": table},
        )
    )


def test_the_stream_is_trimmed_by_age_and_the_rejected_list_by_size(
    redis_client: redis.Redis,
) -> None:
    settings = Settings(offers_stream_max_age_hours=24, rejected_max=3)
    keys = Keys.from_settings(settings)
    now = datetime.now(UTC)
    old_ms = int((now - timedelta(days=2)).timestamp() * 1000)
    for i in range(150):  # entries of two days ago, then fresh ones
        redis_client.xadd(keys.offers_stream, {"offer_id": f"o{i}"}, id=f"{old_ms + i}-0")
    for i in range(5):
        redis_client.xadd(keys.offers_stream, {"offer_id": f"n{i}"})
    redis_client.rpush(keys.events_rejected, *[f"r{i}" for i in range(10)])
    stream, rejected = trim_redis(redis_client, keys, settings, now)
    assert rejected == 7 and redis_client.lrange(keys.events_rejected, 0, -1) == [
        b"r7",
        b"r8",
        b"r9",
    ]
    # MINID ~ trims whole macro nodes: most old entries go at once, no fresh one ever
    left = [f[b"offer_id"].decode() for _, f in redis_client.xrange(keys.offers_stream)]
    assert stream >= 100 and all(f"n{i}" in left for i in range(5))
    assert len(left) == 155 - stream
