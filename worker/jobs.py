"""The RQ entry point. ``handle_event`` is a plain importable function, so the stock
``rq worker cart-events`` (and ``rq worker-pool``) run it.

The process's collaborators are wired here, once per process (per PID, so a forked work horse
never reuses its parent's SQLite connection), and handed to the pipeline.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from typing import Any

import redis
import structlog
from rq import get_current_job
from rq.job import Job

from stores.history import HistorySnapshot, HistorySource
from stores.hot import HotStore
from worker.codes import CodeSigner
from worker.deadletter import DeadLetters
from worker.engines import CircuitBreaker, Engine, PolicyEngine, VllmEngine, endpoint_answers
from worker.events import InvalidEvent, parse_event
from worker.logs import configure
from worker.pipeline import Deps, JobInfo, flush_outbox, process
from worker.publish import Publisher
from worker.rules import RuleConfig
from worker.settings import DEV_CODE_SECRET, Settings

log = structlog.get_logger("sgr.jobs")
SNAPSHOT_SYNC_TIMEOUT_S = 600.0


class Runtime:
    """Everything one worker process holds open: built once, used by every job."""

    def __init__(self, deps: Deps, settings: Settings, dead_letters: DeadLetters) -> None:
        self.deps = deps
        self.settings = settings
        self.dead_letters = dead_letters


def build_engine(settings: Settings, rules: RuleConfig) -> Engine:
    if settings.engine == "policy":
        return PolicyEngine(rules)
    if settings.engine == "auto" and not endpoint_answers(settings.llm_url):
        log.warning("engine_selected", engine="policy", why=f"{settings.llm_url} does not answer")
        return PolicyEngine(rules)
    engine = VllmEngine(
        base_url=settings.llm_url,
        model=settings.llm_model,
        api_key=settings.llm_api_key.get_secret_value(),
        timeout_s=settings.llm_timeout_s,
        retries=settings.llm_retries,
        backoff_s=settings.llm_backoff_s,
        max_tokens=settings.llm_max_tokens,
        temperature=settings.llm_temperature,
        breaker=CircuitBreaker(settings.breaker_failures, settings.breaker_cooldown_s),
    )
    log.info("engine_selected", engine="vllm", url=settings.llm_url)
    return engine


def open_history(settings: Settings) -> HistorySource:
    if settings.history_source == "duckdb":
        from stores.cold import ColdStore  # DuckDB is loaded only by workers that read it

        return ColdStore(settings.cold_db)
    if not settings.history_db.exists() and settings.cold_db.exists():
        # A data folder from before snapshots (or a sync never run): make one rather than fail
        # every job, in a child process so that this worker never loads DuckDB. Concurrent
        # workers may each write one; the renames make that harmless.
        log.warning("history_snapshot_missing", snapshot=str(settings.history_db), action="sync")
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "worker.cli",
                "history",
                "sync",
                "--data-dir",
                str(settings.data_dir),
            ],
            capture_output=True,
            text=True,
            timeout=SNAPSHOT_SYNC_TIMEOUT_S,
        )
        if done.returncode != 0:
            raise RuntimeError(
                f"`sgr history sync` failed: {done.stdout[-500:]}{done.stderr[-500:]}"
            )
    return HistorySnapshot(settings.history_db)


def build_runtime(settings: Settings, client: redis.Redis | None = None) -> Runtime:
    """Open the stores, pick the engine, connect the publisher: the one wiring place."""
    client = client or redis.Redis.from_url(settings.redis_url, health_check_interval=30)
    if settings.code_secret.get_secret_value() == DEV_CODE_SECRET:
        log.warning("code_secret_is_dev_default", hint="set SGR_CODE_SECRET in production")
    rules = RuleConfig.from_settings(settings)
    deps = Deps(
        hot=HotStore(settings.hot_db),
        history=open_history(settings),
        engine=build_engine(settings, rules),
        fallback=PolicyEngine(rules),
        publisher=Publisher(client, settings.offers_stream, settings.offers_channel),
        codes=CodeSigner(settings.code_secret.get_secret_value().encode()),
        rules=rules,
        clock=lambda: datetime.now(UTC),
        offer_ttl=settings.offer_ttl,
        on_invalid_answer=settings.on_invalid_answer,
    )
    runtime = Runtime(deps, settings, DeadLetters(client, settings.dead_letter_key))
    published = flush_outbox(deps)
    if published:
        log.warning("outbox_flushed_at_start", offers=published)
    return runtime


_runtimes: dict[int, Runtime] = {}


def use_runtime(runtime: Runtime) -> None:
    """Make ``runtime`` this process's collaborators (the demo and tests wire their own)."""
    _runtimes[os.getpid()] = runtime


def current_runtime() -> Runtime:
    runtime = _runtimes.get(os.getpid())
    if runtime is None:
        settings = Settings()
        configure(json_logs=True, level=settings.log_level)
        runtime = build_runtime(settings)
        use_runtime(runtime)
        from worker.reaper import start_background

        start_background(runtime)  # re-runs jobs of dead workers, flushes the outbox
    return runtime


def _utc(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _job_info(job: Job | None, max_attempts: int) -> JobInfo:
    if job is None:
        return JobInfo()
    left = job.retries_left or 0
    return JobInfo(
        job_id=job.id,
        enqueued_at=_utc(job.enqueued_at),
        started_at=_utc(job.started_at),
        attempt=max(1, max_attempts - left),
    )


def dead_letter(runtime: Runtime, payload: Any, error: str, job: Job | None) -> None:
    """Record the event's outcome as a dead letter, in the hot store and the Redis list."""
    event_id = payload.get("event_id") if isinstance(payload, dict) else None
    if not isinstance(event_id, str) or not event_id:
        event_id = f"job:{job.id if job else 'none'}"
    now = runtime.deps.clock()
    recorded = runtime.deps.hot.record_outcome(
        event_id=event_id,
        outcome="dead_letter",
        error=error[:2000],
        finished_at=now,
        attempts=_job_info(job, runtime.settings.max_attempts).attempt,
    )
    if not recorded:  # the event already has its one outcome (e.g. committed, then Redis failed)
        log.warning("dead_letter_skipped", event_id=event_id, error=error[:500])
        return
    runtime.dead_letters.push(event_id, error[:2000], job.id if job else None, now, payload)
    log.error("dead_letter", event_id=event_id, error=error[:500])


REDIS_WAIT_S = 30.0


def _wait_for_redis(client: redis.Redis, limit_s: float) -> bool:
    deadline = time.monotonic() + limit_s
    while True:
        try:
            return bool(client.ping())
        except (redis.ConnectionError, redis.TimeoutError):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.25)


def handle_event(payload: Any) -> dict[str, Any]:
    """Process one cart event; the RQ job's result is the outcome as a dict."""
    runtime = current_runtime()
    job = get_current_job()
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(job_id=job.id if job else None)
    try:
        event = parse_event(payload)
    except InvalidEvent as exc:
        dead_letter(runtime, payload, str(exc), job)
        if job is not None:
            job.retries_left = 0  # bad input does not get better by retrying
        raise
    structlog.contextvars.bind_contextvars(
        event_id=event.event_id, session_id=event.session_id, user_id=event.user_id
    )
    info = _job_info(job, runtime.settings.max_attempts)
    try:
        try:
            outcome = process(event, runtime.deps, info)
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            # Redis is only used after the commit (to publish): wait for it to come back, then
            # re-run, which replays the committed outcome and publishes it. Measured: a stock
            # worker that hits a Redis outage while finishing a job exits (a supervisor restarts
            # it), so riding out a short restart here keeps the worker alive.
            log.warning("redis_unavailable", error=str(exc)[:200])
            _wait_for_redis(runtime.deps.publisher.client, REDIS_WAIT_S)
            outcome = process(event, runtime.deps, info)
    except Exception as exc:
        last_attempt = job is None or not job.should_retry
        log.exception("event_failed", last_attempt=last_attempt)
        if last_attempt:
            dead_letter(runtime, payload, f"{type(exc).__name__}: {exc}", job)
        raise
    return outcome.as_dict()
