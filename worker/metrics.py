"""Prometheus metrics for a fleet of worker processes (``sgr metrics serve``).

One exporter per fleet reads the truth where it is kept, at each scrape: the hot store (events by
type, outcome and reason; offers by engine; dead letters; the time of each stage, fallbacks and
guardrail interventions, from each outcome's stopwatch and recorded problems) and Redis (queue
depth, the oldest queued job's age). What the stores do not hold (LLM request latency, tokens,
retries, breaker state) each worker process adds to two Redis hashes (``LlmFigures``, flushed
every few seconds by a daemon thread): counters there are fleet-wide sums by construction, so any
number of processes on any number of hosts is correct, with no multiprocess directory.

Counts equal the stores' at the moment of the scrape. ``sgr dead-letters requeue`` deletes a dead
letter's outcome, so ``sgr_events_total{outcome="dead_letter"}`` can go down (Prometheus treats it
as a counter reset). The histograms are folded in incrementally: each scrape reads the outcomes
finished since the previous one (with an overlap of ``OVERLAP_S``, de-duplicated by event id).
"""

from __future__ import annotations

import json
import os
import re
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import redis
import structlog
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from stores.base import StoreUnavailable
from stores.hot import open_hot_store
from worker import rqcompat
from worker.domain.timefmt import from_text
from worker.keys import Keys
from worker.settings import Settings

log = structlog.get_logger("sgr.metrics")

# The stopwatch's laps (worker/stopwatch.Stopwatch, stored in processed_events.timings) and the
# stage each one measures. The gate is inside ``history`` (or ``check`` when the gate says no),
# the cap inside ``check``; ``publish`` is the offer's publication time minus the outcome's
# finish time (the commit's end and the Redis round trip). ``commit`` has no lap of its own.
LAP_STAGE = {"state": "context", "history": "history", "llm": "ask", "checks": "check"}
STAGE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
LLM_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32, 64)
OVERLAP_S = 120.0  # an outcome committed this long after its finished_at is still counted once
BREAKER_FRESH_S = 60.0  # a worker that has not reported its breaker for this long is ignored
FLUSH_S = 5.0  # how often a worker process adds its LLM figures to Redis
FOLD_LIMIT = 50_000  # outcomes folded per scrape at most (a backlog is folded over a few)
CONNECT_TIMEOUT_S = 3.0  # the exporter's waits for a store connection, and Redis's
STATEMENT_TIMEOUT_MS = 5_000  # a scrape's statements (PostgreSQL), well within a 10 s scrape
_PROBLEM = re.compile(r"^([a-z][a-z_]*)(?::|$)")


# --- in each worker process: what the stores do not hold ------------------------------------
class LlmFigures:
    """LLM requests, tokens, retries and breaker state of one process, added to Redis every
    ``FLUSH_S`` by a daemon thread (started on the first request). It is the engine's observer
    (``worker.engines.openai_compat.LlmObserver``): the runtime passes it to ``build_engine``,
    and the transport calls ``request``, ``retry`` and ``watch_breaker``; engines without an LLM
    (the rules engine) never call it."""

    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self.client, self.keys = client, keys
        self.breaker: Any = None
        self.me = f"{socket.gethostname()}:{os.getpid()}"
        self.lock = threading.Lock()
        self.pending: dict[str, float] = {}
        self.thread: threading.Thread | None = None

    def add(self, **figures: float) -> None:
        with self.lock:
            for name, value in figures.items():
                self.pending[name] = self.pending.get(name, 0.0) + value
            if self.thread is None:
                self.thread = threading.Thread(target=self._loop, name="sgr-metrics", daemon=True)
                self.thread.start()

    # --- the observer's callbacks ---------------------------------------------------------------
    def request(self, seconds: float, prompt_tokens: int, completion_tokens: int) -> None:
        le = next((b for b in LLM_BUCKETS if seconds <= b), None)
        self.add(
            **{
                "requests": 1,
                "seconds_sum": seconds,
                f"bucket:{'+Inf' if le is None else le}": 1,
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
            }
        )

    def retry(self, kind: str, delay_s: float) -> None:
        self.add(retries=1)

    def watch_breaker(self, breaker: Any) -> None:
        self.breaker = breaker

    def flush(self) -> None:
        with self.lock:
            pending, self.pending = self.pending, {}
        breaker = self.breaker
        is_open = bool(breaker is not None and breaker.is_open)
        try:
            pipe = self.client.pipeline(transaction=False)
            for name, value in pending.items():
                if float(value).is_integer():
                    pipe.hincrby(self.keys.llm_metrics, name, int(value))
                else:
                    pipe.hincrbyfloat(self.keys.llm_metrics, name, value)
            pipe.hset(self.keys.breaker_states, self.me, f"{int(is_open)} {time.time():.3f}")
            pipe.execute()
        except redis.RedisError as exc:  # figures are never worth failing or slowing a job
            log.warning("metrics_flush_failed", error=str(exc)[:200])
            with self.lock:
                for name, value in pending.items():
                    self.pending[name] = self.pending.get(name, 0.0) + value

    def _loop(self) -> None:
        while True:
            time.sleep(FLUSH_S)
            self.flush()


# --- the exporter --------------------------------------------------------------------------
@dataclass
class Histogram:
    buckets: tuple[float, ...]
    counts: list[int] = field(default_factory=list)
    total: float = 0.0

    def __post_init__(self) -> None:
        self.counts = [0] * (len(self.buckets) + 1)

    def observe(self, value: float) -> None:
        index = next((i for i, b in enumerate(self.buckets) if value <= b), len(self.buckets))
        self.counts[index] += 1
        self.total += value

    def cumulative(self) -> list[tuple[str, float]]:
        out: list[tuple[str, float]] = []
        running = 0
        for bound, count in zip((*map(str, self.buckets), "+Inf"), self.counts, strict=True):
            running += count
            out.append((bound, running))
        return out


def _problems(error: str | None) -> list[str]:
    """The names of the problems an outcome recorded (``name: detail; name2``)."""
    names = []
    for part in (error or "").split("; "):
        match = _PROBLEM.match(part.strip())
        if match:
            names.append(match.group(1))
    return names


class StoreReader:
    """The hot store read for metrics, on whichever backend the settings name (its queries in
    ``sql/metrics``, shared by the dialects). Opened at the first read, and again at the next
    read after it could not be (the server down when the exporter started); statements time out
    after ``STATEMENT_TIMEOUT_MS`` and a connection wait after ``CONNECT_TIMEOUT_S``, so a scrape
    never hangs on the store."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.store: Any = None
        self.where = "hot store"
        self.open()

    def open(self) -> Any:
        if self.store is None:
            try:
                self.store = open_hot_store(
                    self.settings.hot_store_url.get_secret_value(),
                    self.settings.hot_db,
                    create=False,  # the exporter reads; it never makes a store
                    timeouts=(CONNECT_TIMEOUT_S, STATEMENT_TIMEOUT_MS),
                )
                self.where = self.store.where
            except StoreUnavailable as exc:  # answered as sgr_up{source="hot_store"} 0
                log.warning("metrics_store_unavailable", error=str(exc)[:300])
                return None
        return self.store

    def rows(self, name: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        store = self.open()
        if store is None:
            raise StoreUnavailable("hot store: not reachable")
        return store.report("metrics", name, params)  # type: ignore[no-any-return]

    def finished_since(self, since: datetime, limit: int = 50_000) -> list[dict[str, Any]]:
        return self.rows("finished_since", {"since": since, "limit": limit})


def _time(value: Any) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    return from_text(value)


class FleetCollector:
    """A prometheus_client collector: every scrape reads the hot store and Redis, each on its
    own: a source that cannot be read (down, restarting, too slow) is ``sgr_up{source=...} 0``
    with its figures left out, never a failed scrape; the next scrape tries it again (the
    store's pool reconnects, redis-py reconnects)."""

    def __init__(self, settings: Settings, client: redis.Redis, store: StoreReader) -> None:
        self.settings, self.client, self.store = settings, client, store
        self.keys = Keys.from_settings(settings)
        self.lock = threading.Lock()
        self.stages = {s: Histogram(STAGE_BUCKETS) for s in (*LAP_STAGE.values(), "publish")}
        self.fallbacks: dict[str, int] = {}
        self.guardrail: dict[str, int] = {}
        # the histograms count what finished while this exporter runs (a restart is a counter
        # reset to Prometheus): the first scrape reads the last OVERLAP_S, never the history
        self.cursor = datetime.now(UTC)
        self.seen: dict[str, datetime] = {}

    def describe(self) -> Iterable[Metric]:
        return []  # collected on demand only (no scrape at registration)

    def _fold(self, now: datetime) -> None:
        """Fold the outcomes finished since the last scrape into the histograms, once each."""
        since = self.cursor - timedelta(seconds=OVERLAP_S)
        newest = self.cursor
        for row in self.store.finished_since(since, FOLD_LIMIT):
            event_id = row["event_id"]
            finished = _time(row["finished_at"])
            if event_id in self.seen or finished is None:
                continue
            published = _time(row["published_at"])
            if (
                row["outcome"] == "offer"
                and published is None
                and finished > now - timedelta(seconds=OVERLAP_S / 2)
            ):
                continue  # committed, not yet on the stream: folded in once it is
            self.seen[event_id] = finished
            newest = max(newest, finished)
            if row["outcome"] == "dead_letter":
                continue
            timings = row["timings"]
            laps = json.loads(timings) if isinstance(timings, str) else (timings or {})
            for lap, ms in laps.items():
                if lap in LAP_STAGE:
                    self.stages[LAP_STAGE[lap]].observe(float(ms) / 1000)
            if published is not None:
                self.stages["publish"].observe(max(0.0, (published - finished).total_seconds()))
            problems = _problems(row["error"])
            if problems:  # the engine's answer was not used as it was
                engine = [p for p in problems if p.startswith("engine_")]
                reason = engine[0] if engine else "answer_rejected"
                self.fallbacks[reason] = self.fallbacks.get(reason, 0) + 1
                for check in problems:
                    if not check.startswith("engine_"):
                        self.guardrail[check] = self.guardrail.get(check, 0) + 1
        self.cursor = newest
        horizon = newest - timedelta(seconds=2 * OVERLAP_S)
        self.seen = {k: v for k, v in self.seen.items() if v >= horizon}

    def collect(self) -> Iterator[Metric]:
        with self.lock:
            yield from self._collect()

    def _source(
        self, name: str, read: Callable[[datetime], Iterable[Metric]], now: datetime
    ) -> tuple[list[Metric], bool, float]:
        started = time.monotonic()
        try:
            return list(read(now)), True, time.monotonic() - started
        except Exception as exc:  # down, restarting, timed out: this source's figures wait
            log.warning(
                "metrics_source_failed", source=name, error=f"{type(exc).__name__}: {exc}"[:300]
            )
            return [], False, time.monotonic() - started

    def _collect(self) -> Iterator[Metric]:
        now = datetime.now(UTC)
        up = GaugeMetricFamily(
            "sgr_up", "Whether the exporter could read the source at this scrape", labels=["source"]
        )
        took = GaugeMetricFamily(
            "sgr_scrape_source_seconds",
            "Time this scrape spent reading the source",
            labels=["source"],
        )
        for name, read in (("hot_store", self._hot_store), ("redis", self._redis)):
            metrics, ok, seconds = self._source(name, read, now)
            yield from metrics
            up.add_metric([name], 1 if ok else 0)
            took.add_metric([name], seconds)
        yield up
        yield took

    def _hot_store(self, now: datetime) -> Iterator[Metric]:
        events = CounterMetricFamily(
            "sgr_events",
            "Outcomes recorded, by event type, outcome and reason (hot store counters)",
            labels=["type", "outcome", "reason"],
        )
        for r in self.store.rows("event_counts"):
            events.add_metric([r["type"], r["outcome"], r["reason"]], int(r["n"]))
        yield events
        offers = CounterMetricFamily(
            "sgr_offers", "Offers recorded, by engine (hot store counters)", labels=["engine"]
        )
        for r in self.store.rows("offer_counts"):
            offers.add_metric([r["engine"]], int(r["n"]))
        yield offers
        dead = int(self.store.rows("dead_letters")[0]["n"])
        yield GaugeMetricFamily("sgr_dead_letters", "Dead-letter outcomes in the hot store", dead)
        waiting = self.store.rows(
            "scheduled_counts", {"overdue_before": now - timedelta(minutes=1)}
        )
        yield GaugeMetricFamily(
            "sgr_scheduled_decisions",
            "Abandonment decisions waiting for their due time (docs/recovery.md)",
            int(waiting[0]["waiting"]) if waiting else 0,
        )
        yield GaugeMetricFamily(
            "sgr_overdue_decisions",
            "Waiting decisions due more than a minute ago (nothing drains the due set)",
            int(waiting[0]["overdue"] or 0) if waiting else 0,
        )
        yield from self._lift()

        self._fold(now)
        stages = HistogramMetricFamily(
            "sgr_stage_seconds", "Time in each pipeline stage", labels=["stage"]
        )
        for stage, hist in self.stages.items():
            stages.add_metric([stage], hist.cumulative(), hist.total)
        yield stages
        fallbacks = CounterMetricFamily(
            "sgr_fallbacks", "Answers replaced by the fallback, by why", labels=["reason"]
        )
        for reason, n in sorted(self.fallbacks.items()):
            fallbacks.add_metric([reason], n)
        yield fallbacks
        guard = CounterMetricFamily(
            "sgr_guardrail_interventions", "Rule checks an answer failed", labels=["check"]
        )
        for check, n in sorted(self.guardrail.items()):
            guard.add_metric([check], n)
        yield guard

    def _lift(self) -> Iterator[Metric]:
        """The running holdout experiment per group (docs/lift.md); nothing without one."""
        experiment = self.settings.experiment()
        if not experiment.active:
            return
        names = ("carts", "orders", "revenue")
        helps = {
            "carts": "Eligible abandonments of the running experiment, by group",
            "orders": "Orders attributed to them within the attribution window, by group",
            "revenue": "Value of those orders, by group",
        }
        families = {
            n: GaugeMetricFamily(f"sgr_lift_{n}", helps[n], labels=["group"]) for n in names
        }
        for r in self.store.rows("lift_counts", {"experiment": experiment.id}):
            for n in names:
                families[n].add_metric([r["grp"]], float(r[n]))
        yield from families.values()

    def _redis_memory(self) -> Iterator[Metric]:
        """Redis's used and maximum memory (``INFO memory``); left out where INFO is not
        allowed (some managed Redis services, fakeredis)."""
        try:
            memory = cast(dict[str, Any], self.client.info("memory"))
        except redis.ResponseError:
            return
        yield GaugeMetricFamily(
            "sgr_redis_memory_used_bytes", "Redis used_memory", int(memory.get("used_memory", 0))
        )
        yield GaugeMetricFamily(
            "sgr_redis_memory_max_bytes",
            "Redis maxmemory (0: no limit; with noeviction, writes fail beyond it)",
            int(memory.get("maxmemory", 0)),
        )

    def _redis(self, now: datetime) -> Iterator[Metric]:
        queue_key = self.keys.rq_queue_list
        pipe = self.client.pipeline(transaction=False)
        pipe.llen(queue_key)
        pipe.lindex(queue_key, 0)
        pipe.hgetall(self.keys.llm_metrics)
        pipe.hgetall(self.keys.breaker_states)
        pipe.hgetall(self.keys.queue_alerts)
        pipe.scard(rqcompat.workers_key(self.keys.queue))
        pipe.get(self.keys.store_failures)
        depth, head, llm_raw, breakers, alerts_raw, workers, store_failures = pipe.execute()
        yield GaugeMetricFamily(
            "sgr_workers", "RQ workers registered on the queue (alert on 0)", int(workers)
        )
        yield CounterMetricFamily(
            "sgr_store_failures",
            "Dead letters that reached only the Redis list because the hot store failed (an alert)",
            int(store_failures or 0),
        )
        yield from self._redis_memory()
        yield GaugeMetricFamily("sgr_queue_depth", "Jobs waiting on the queue", int(depth))
        age = 0.0
        if head is not None:
            job_id = head.decode("utf-8", "replace")  # a poison item must not stop the scrape
            enqueued: Any = self.client.hget(rqcompat.job_key(job_id), "enqueued_at")
            if enqueued:
                text = enqueued.decode()
                moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
                moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
                age = max(0.0, (now - moment).total_seconds())
        yield GaugeMetricFamily(
            "sgr_oldest_queued_age_seconds", "Age of the oldest queued job", age
        )
        alerts = {k.decode(): int(v) for k, v in (alerts_raw or {}).items()}
        yield CounterMetricFamily(
            "sgr_refused_jobs",
            "Jobs naming a function that is not one of the project's job functions (an alert)",
            alerts.get("refused_jobs", 0),
        )
        yield CounterMetricFamily(
            "sgr_store_waits",
            "Jobs that waited for the hot store (it went away: restart, failover, closed "
            "connections) and went on (an alert when it keeps rising)",
            alerts.get("store_waits", 0),
        )
        yield CounterMetricFamily(
            "sgr_store_requeues",
            "Jobs put back on the queue after SGR_STORE_RETRY_S without the hot store (an alert)",
            alerts.get("store_requeues", 0),
        )
        yield CounterMetricFamily(
            "sgr_poison_items",
            "Undecodable or unparsable items moved aside as dead letters (an alert)",
            alerts.get("poison_items", 0),
        )

        llm = {k.decode(): float(v) for k, v in (llm_raw or {}).items()}
        buckets, running = [], 0.0
        for bound in (*map(str, LLM_BUCKETS), "+Inf"):
            running += llm.get(f"bucket:{bound}", 0.0)
            buckets.append((bound, running))
        latency = HistogramMetricFamily("sgr_llm_request_seconds", "LLM request latency")
        latency.add_metric([], buckets, llm.get("seconds_sum", 0.0))
        yield latency
        tokens = CounterMetricFamily("sgr_llm_tokens", "LLM tokens", labels=["kind"])
        tokens.add_metric(["prompt"], llm.get("prompt_tokens", 0.0))
        tokens.add_metric(["completion"], llm.get("completion_tokens", 0.0))
        yield tokens
        yield CounterMetricFamily(
            "sgr_llm_retries", "LLM requests retried", llm.get("retries", 0.0)
        )
        open_now = 0
        for value in (breakers or {}).values():
            state, _, stamp = value.decode().partition(" ")
            if state == "1" and time.time() - float(stamp or 0) <= BREAKER_FRESH_S:
                open_now += 1
        yield GaugeMetricFamily(
            "sgr_breaker_open", "Worker processes whose LLM circuit breaker is open", open_now
        )


def exporter_redis(settings: Settings) -> redis.Redis:
    """The exporter's Redis client: short timeouts, so a scrape says ``sgr_up{source="redis"} 0``
    instead of hanging; it reconnects by itself at the next command."""
    return redis.Redis.from_url(
        settings.redis_url,
        socket_connect_timeout=CONNECT_TIMEOUT_S,
        socket_timeout=CONNECT_TIMEOUT_S,
        health_check_interval=30,
    )


def registry_for(settings: Settings, client: redis.Redis) -> Any:
    """A prometheus_client registry holding only the fleet's collector."""
    from prometheus_client import CollectorRegistry

    registry = CollectorRegistry(auto_describe=False)
    registry.register(FleetCollector(settings, client, StoreReader(settings)))
    return registry


def exporter_app(registry: Any) -> Callable[..., Iterable[bytes]]:
    """The exporter's WSGI app: ``/metrics`` (a scrape of the stores) and ``/healthz`` (the
    process answers; no store is read: a cheap liveness and readiness probe)."""
    from prometheus_client import make_wsgi_app

    metrics = make_wsgi_app(registry)

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO") or "/"
        if path == "/healthz":
            start_response("200 OK", [("Content-Type", "text/plain; charset=utf-8")])
            return [b"ok\n"]
        if path in ("/metrics", "/"):
            return metrics(environ, start_response)  # type: ignore[no-any-return]
        start_response("404 Not Found", [("Content-Type", "text/plain; charset=utf-8")])
        return [b"not found: /metrics or /healthz\n"]

    return app
