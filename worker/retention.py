"""Retention: what the hot store and Redis keep, bounded by age and size.

- Hot store → cold store (``move_to_cold``, ``sgr retention run``): offers, their voids, turns
  and processed events older than the cutoff are copied to the cold store's archive tables
  (DuckDB, ``archived_*``; a row copied twice stays one) and then deleted from the hot store, in
  batches. The cutoff is ``now`` minus the largest of ``SGR_RETENTION_DAYS``, the offer window
  (``SGR_OFFER_WINDOW_HOURS``: the newest offer of a customer decides the next one), the event
  age limit plus the clock skew (an event older than that is refused by the contract, so replay
  detection no longer needs its row) and the code validity (``SGR_OFFER_TTL_HOURS``). On top:
  a live unredeemed offer (not expired, not redeemed, not void) never leaves, nor an unpublished
  one before it expires; an event leaves only once its offer and its turn have left (its replay
  would find them); a conversation leaves only when it has had no turn since the cutoff; dead
  letters stay (``sgr dead-letters requeue`` works on them). What the one-live-code guarantee
  reads (``live_offer``: the customer's newest offer that is not void; ``last_offer_for_user``)
  is therefore never changed for an offer that could still be used or still counts.
- Redis (``trim_redis``, also each reaper pass): the offers stream loses its entries older than
  ``SGR_OFFERS_STREAM_MAX_AGE_HOURS`` (``XTRIM MINID ~``; the per-offer markers expire after
  ``SGR_OFFERS_RETENTION_HOURS`` by themselves), the
  bridge's rejected list keeps its newest ``SGR_REJECTED_MAX`` (it is trimmed on every push as
  well). RQ's finished and failed jobs expire by themselves (``SGR_JOB_RESULT_TTL_S``,
  ``SGR_JOB_FAILURE_TTL_S``, set on every job and by the worker).
- ``redis_memory``: what each kind of key costs in the Redis at hand (``sgr retention memory``),
  for the sizing rule of docs/operations.md.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import redis
import structlog

from stores.hotstore import SqlHotStore
from worker.keys import Keys
from worker.settings import Settings

log = structlog.get_logger("sgr.retention")

# (hot-store table, the query that picks what may leave, its key): offers first, since what an
# event, a turn or a void needs is its offer's absence
STEPS = (
    ("offers", "pick_offers", "offer_id"),
    ("offer_voids", "pick_offer_voids", "offer_id"),
    ("turns", "pick_turns", "event_id"),
    ("processed_events", "pick_events", "event_id"),
)
BATCH = 5_000


@dataclass
class RetentionReport:
    cutoff: str | None = None  # None: SGR_RETENTION_DAYS=0, the hot store keeps everything
    moved: dict[str, int] = field(default_factory=dict)
    stream_trimmed: int = 0
    rejected_trimmed: int = 0
    archive: dict[str, int] = field(default_factory=dict)
    dry_run: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "cutoff": self.cutoff,
            "moved": self.moved,
            "stream_trimmed": self.stream_trimmed,
            "rejected_trimmed": self.rejected_trimmed,
            "archive": self.archive,
            "dry_run": self.dry_run,
        }


def cutoff_for(settings: Settings, now: datetime) -> datetime | None:
    """The time before which rows may leave the hot store (None: retention is off)."""
    if settings.retention_days <= 0:
        return None
    days = max(
        settings.retention_days,
        settings.offer_window_hours / 24,
        (settings.event_max_age_hours + settings.event_max_skew_s / 3600) / 24,
        settings.offer_ttl_hours / 24,
    )
    return now - timedelta(days=days)


def move_to_cold(
    hot: SqlHotStore,
    archive: Any,
    cutoff: datetime,
    now: datetime,
    *,
    batch: int = BATCH,
    dry_run: bool = False,
) -> dict[str, int]:
    """Copy what may leave to ``archive`` (``stores.cold.Archive``), then delete it from
    ``hot``, batch by batch; rows moved per table (``dry_run``: what the first batch would)."""
    moved: dict[str, int] = {}
    stamp = now.isoformat()
    for table, pick, key in STEPS:
        total = 0
        while True:
            rows = hot.report("retention", pick, {"cutoff": cutoff, "now": now, "limit": batch})
            if dry_run or not rows:
                total += len(rows)
                break
            archive.add(table, rows, stamp)  # committed in the cold store first
            hot.remove(table, [str(r[key]) for r in rows])
            total += len(rows)
            if len(rows) < batch:
                break
        moved[table] = total
    return moved


def trim_redis(client: redis.Redis, keys: Keys, settings: Settings, now: datetime) -> tuple[int, int]:  # fmt: skip
    """The offers stream's entries older than ``SGR_OFFERS_STREAM_MAX_AGE_HOURS`` and the rejected
    list's oldest beyond ``SGR_REJECTED_MAX`` removed; (stream entries, list items) removed."""
    oldest_ms = int((now.timestamp() - settings.offers_stream_max_age_hours * 3600) * 1000)
    stream = int(
        cast(int, client.xtrim(keys.offers_stream, minid=f"{oldest_ms}-0", approximate=True))
    )
    with client.pipeline() as pipe:
        pipe.llen(keys.events_rejected)
        pipe.ltrim(keys.events_rejected, -settings.rejected_max, -1)
        pipe.llen(keys.events_rejected)
        before, _, after = pipe.execute()
    return stream, int(before) - int(after)


def run_retention(
    settings: Settings, hot: SqlHotStore, client: redis.Redis, *, dry_run: bool = False
) -> RetentionReport:
    """One pass: the hot store's old rows to the cold store (when ``SGR_RETENTION_DAYS`` is
    set), then Redis's stream and rejected list trimmed."""
    now = datetime.now(UTC)
    report = RetentionReport(dry_run=dry_run)
    cutoff = cutoff_for(settings, now)
    if cutoff is not None:
        from stores.cold import Archive  # DuckDB: loaded only where retention runs

        report.cutoff = cutoff.isoformat()
        archive = Archive(settings.cold_db)
        try:
            report.moved = move_to_cold(hot, archive, cutoff, now, dry_run=dry_run)
            report.archive = archive.counts()
        finally:
            archive.close()
    if not dry_run:
        keys = Keys.from_settings(settings)
        report.stream_trimmed, report.rejected_trimmed = trim_redis(client, keys, settings, now)
    if any(report.moved.values()) or report.stream_trimmed or report.rejected_trimmed:
        log.info("retention", **report.as_dict())
    return report


# --- what Redis holds, by kind --------------------------------------------------------------
def _kind(key: str, keys: Keys) -> str:
    if key == keys.offers_stream:
        return "offers_stream"
    if key.startswith(keys.offers_stream + ":published:"):
        return "published_marker"
    for prefix, kind in (
        ("rq:job:", "rq_job"),
        ("rq:results:", "rq_result"),
        ("rq:execution:", "rq_execution"),
        ("rq:executions:", "rq_execution_index"),
        ("rq:queue:", "rq_queue"),
        ("rq:", "rq_other"),
    ):
        if key.startswith(prefix):
            return kind
    return "other"


def _scan(client: redis.Redis) -> Iterator[str]:
    for raw in client.scan_iter(count=1000):
        yield raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)


def redis_memory(client: redis.Redis, keys: Keys, sample: int = 500) -> dict[str, Any]:
    """Keys and bytes (``MEMORY USAGE``, at most ``sample`` keys of each kind measured, the rest
    counted) per kind of key, the offers stream per entry, and ``used_memory``; with the bytes
    one finished job costs while its result lives and one published offer while its marker and
    its stream entry live."""
    found: dict[str, list[str]] = {}
    counts: dict[str, int] = {}
    for key in _scan(client):
        kind = _kind(key, keys)
        counts[kind] = counts.get(kind, 0) + 1
        if len(found.setdefault(kind, [])) < sample:
            found[kind].append(key)
    kinds: dict[str, Any] = {}
    for kind, names in sorted(found.items()):
        with client.pipeline(transaction=False) as pipe:
            for name in names:
                pipe.memory_usage(name, samples=0)
            sizes = [int(s or 0) for s in pipe.execute()]
        mean = sum(sizes) / len(sizes) if sizes else 0.0
        kinds[kind] = {
            "keys": counts[kind],
            "bytes_each": round(mean),
            "bytes": round(mean * counts[kind]),
        }
    entries = int(cast(int, client.xlen(keys.offers_stream))) if "offers_stream" in kinds else 0
    per_entry = kinds["offers_stream"]["bytes_each"] / entries if entries else None
    job = sum(
        kinds.get(k, {}).get("bytes_each", 0) for k in ("rq_job", "rq_result", "rq_execution")
    )
    offer = (per_entry or 0) + kinds.get("published_marker", {}).get("bytes_each", 0)
    info = cast(dict[str, Any], client.info("memory"))
    return {
        "used_memory": int(info.get("used_memory", 0)),
        "maxmemory": int(info.get("maxmemory", 0)),
        "maxmemory_policy": info.get("maxmemory_policy"),
        "kinds": kinds,
        "offers_stream_entries": entries,
        "bytes_per_stream_entry": round(per_entry) if per_entry else None,
        "bytes_per_finished_job": job,
        "bytes_per_published_offer": round(offer),
    }
