"""``sgr demo``: seed the stores, push a few hundred synthetic events, drain the queue with a
worker, and summarise what came out. Uses Redis when it answers, an in-process fakeredis if not."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import redis
from rq import Queue, SimpleWorker

from producers.enqueue import enqueue_events
from producers.synthetic import StreamConfig, customers, event_stream
from stores.cold import write_history
from stores.history import sync_snapshot
from worker.jobs import build_runtime, use_runtime
from worker.settings import Settings

BAD_EVENTS: list[Any] = [
    {
        "event_id": "bad-currency",
        "type": "cart_abandoned",
        "occurred_at": "2026-01-01T00:00:00Z",
        "user_id": "u000001",
        "session_id": "s-bad",
        "cart": {"currency": "euro", "value": 50, "margin": 0.3},
    },
    {
        "event_id": "bad-margin",
        "type": "cart_abandoned",
        "occurred_at": "2026-01-01T00:00:00Z",
        "user_id": "u000001",
        "session_id": "s-bad",
        "cart": {"currency": "EUR", "value": 50, "margin": 1.7},
    },
    {
        "event_id": "bad-type",
        "type": "cart_exploded",
        "occurred_at": "2026-01-01T00:00:00Z",
        "user_id": "u000001",
        "session_id": "s-bad",
    },
]


@dataclass
class DemoResult:
    summary: dict[str, Any]
    samples: list[dict[str, Any]]


def connect(settings: Settings) -> tuple[redis.Redis, str]:
    """Redis at SGR_REDIS_URL if it answers, else an in-process fakeredis (said in the result)."""
    try:
        client = redis.Redis.from_url(settings.redis_url, socket_connect_timeout=1)
        client.ping()
        return client, settings.redis_url
    except redis.RedisError:
        import fakeredis

        return fakeredis.FakeRedis(), "fakeredis (in-process; no Redis answered)"


def run_demo(settings: Settings, sessions: int = 120, customers_count: int = 5000) -> DemoResult:
    data = settings.data_dir
    for name in ("hot.sqlite", "hot.sqlite-wal", "hot.sqlite-shm"):
        (data / name).unlink(missing_ok=True)
    write_history(settings.cold_db, customers(customers_count))
    sync_snapshot(settings.cold_db, settings.history_db)
    settings = settings.model_copy(
        update={
            "queue": "sgr-demo",
            "offers_stream": "sgr:demo:offers",
            "offers_channel": "sgr:demo:offers:live",
            "dead_letter_key": "sgr:demo:dead-letters",
        }
    )
    client, where = connect(settings)
    client.delete(settings.queue, settings.offers_stream, settings.dead_letter_key)
    runtime = build_runtime(settings, client)
    use_runtime(runtime)
    queue = Queue(settings.queue, connection=client)
    events = list(event_stream(StreamConfig(sessions=sessions, known_customers=customers_count)))
    report = enqueue_events(queue, events, max_attempts=settings.max_attempts)
    bad = enqueue_events(queue, BAD_EVENTS, validate=False, max_attempts=1)
    SimpleWorker([queue], connection=client).work(burst=True, logging_level="CRITICAL")

    hot = runtime.deps.hot
    figures = hot.summary()
    largest = hot.largest_offer()
    engines = hot.offers_by_engine()
    summary: dict[str, Any] = {
        "events": len(report.accepted) + len(bad.accepted),
        "recorded": figures["events"],
        "offers": figures["offers"],
        "no_offer": {r: n for o, r, n in hot.outcome_counts() if o == "no_offer"},
        "dead_letter": figures["dead_letter"],
        "engine": runtime.deps.engine.name,
        "offers_by_engine": engines,
        "llm_answers": figures["engine_asked"] if runtime.deps.engine.name == "vllm" else 0,
        "schema_valid": (figures["engine_asked"] - figures["engine_failed"])
        if runtime.deps.engine.name == "vllm"
        else 0,
        "guardrail_interventions": figures["guardrail_interventions"],
        "bound_interventions": figures["bound_interventions"],
        "largest_discount_pct": largest["discount_pct"] if largest else None,
        "its_cap_pct": largest["cap_pct"] if largest else None,
        "over_cap": figures["over_cap"],
        "published": int(client.xlen(settings.offers_stream)),  # type: ignore[arg-type]
        "unpublished": figures["unpublished"],
        "redis": where,
        "data_dir": str(data),
    }
    return DemoResult(summary, hot.sample_offers())
