"""The RQ entry points: plain importable functions, so the stock ``rq worker cart-events`` (and
``rq worker-pool``) run them. Both hand their events to the one runner (``worker/runner.py``):
``handle_event`` is a run of one, ``handle_batch`` of up to N, ``handle_due`` the scheduled
decisions that are due (docs/recovery.md); the guarantees around a run (bad
input dead-lettered at once, a failed event retried with the job and dead-lettered with its own
payload on the last attempt, a store that cannot be written stopping the worker with the job
back on the queue, Redis riding out a restart) are written once, in ``_run``; a hot store that
went away for a moment (``StoreTransient``) is waited for with backoff around the whole job
(``_survives_store_outage``), and a fatal condition stops the worker with a non-zero status."""

from __future__ import annotations

import contextlib
import functools
import json
import os
import signal
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, TypeVar

import redis
import structlog
from rq import get_current_job
from rq.job import Job
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_delay,
    wait_exponential_jitter,
)

from stores.base import StoreTransient, StoreUnavailable
from worker import deadletter
from worker.deps import JobInfo
from worker.domain.events import CartEvent, InvalidEvent, parse_event
from worker.logs import configure, route_stdlib
from worker.reaper import Reaper, start_background
from worker.redact import redact_text
from worker.runner import Result, run
from worker.runtime import Runtime, build_runtime, install, installed, size_llm_timeout
from worker.safejob import request_fatal_stop
from worker.settings import Settings, SettingsError, load_settings

log = structlog.get_logger("sgr.jobs")
REDIS_WAIT_S = 30.0
# A due decision claimed this many times per attempt, never decided, becomes a dead letter.
MAX_CLAIMS_PER_ATTEMPT = 3
STORE_BACKOFF_FIRST_S = 0.1  # the first wait for a store that went away; doubled up to the next
STORE_BACKOFF_MAX_S = 2.0
START_RETRY_S = 20.0  # a process's first opening of its stores, retried this long (a restart)
T = TypeVar("T")


def start_process(settings: Settings | None = None) -> Runtime:
    """Start a worker process: settings checked, logging set up, the runtime built and installed,
    the outbox flushed, the reaper thread started (unless ``SGR_REAP_INTERVAL_S=0``)."""
    settings = settings or load_settings()
    configure(json_logs=settings.log_format == "json", level=settings.log_level)
    route_stdlib(json_logs=settings.log_format == "json", level=settings.log_level)
    runtime = install(build_runtime(settings))
    size_llm_timeout(runtime)  # SGR_LLM_WARMUP: the deadline from the server's measured speed
    published = runtime.deps.outbox.flush()
    if published:
        log.warning("outbox_flushed_at_start", offers=published)
    start_background(runtime)
    return runtime


def for_job() -> Runtime:
    """The runtime a job runs with: this process's, started on the first job if none was. A
    process that cannot start (bad settings, a hot store it cannot reach within
    ``START_RETRY_S``) stops taking jobs and exits with status 75."""
    runtime = installed()
    if runtime is not None:
        return runtime
    try:
        return retry_store(start_process, START_RETRY_S)
    except SettingsError as exc:
        stop_worker(str(exc))
        raise
    except StoreTransient as exc:
        # never reached since it started: not an outage to wait out but a worker that cannot
        # start; it stops (status 75) and its supervisor starts it again, as `sgr worker` does
        raise StoreUnavailable(f"cannot start: {exc}") from None


def _give_back_attempt(job: Job | None) -> None:
    """The job's failure is not its events' fault: RQ requeues it without spending an attempt."""
    if job is not None:
        job.retries_left = (job.retries_left or 0) + 1
        with contextlib.suppress(Exception):
            job.save_meta()


def stop_worker(reason: str) -> None:
    """This worker cannot do its work (its store refuses it for good or is unwritable, its
    settings are wrong): log the reason once, give the current job its attempt back (RQ puts it
    back on the queue for a healthy worker instead of burning its attempts here), and ask RQ for a
    warm shutdown, after which the worker exits with status 75 (``safejob.FATAL_EXIT_STATUS``),
    so that a supervisor's ``Restart=on-failure`` starts it again."""
    log.error("worker_stopping", error=redact_text(reason)[:500])
    request_fatal_stop(reason)
    job = get_current_job()
    _give_back_attempt(job)
    if job is not None or os.environ.get("SGR_STOP_ON_FATAL") == "1":
        os.kill(os.getpid(), signal.SIGTERM)


def _store_retry_limit() -> float:
    runtime = installed()
    try:
        settings = runtime.settings if runtime is not None else load_settings()
    except SettingsError:
        return 0.0  # the job's own start says why (for_job)
    return min(settings.store_retry_s, settings.job_timeout_s / 2)  # within the job's time


def _log_store_wait(state: RetryCallState) -> None:
    exc = state.outcome.exception() if state.outcome is not None else None
    log.warning(
        "store_unavailable_retrying",
        attempt=state.attempt_number,
        waited_s=round(state.seconds_since_start or 0.0, 2),
        error=redact_text(str(exc))[:300],
    )


def retry_store(action: Callable[[], T], limit_s: float) -> T:
    """``action()``, again with backoff while it raises ``StoreTransient``, for up to
    ``limit_s``; then the last ``StoreTransient`` is raised."""
    retrying = Retrying(
        retry=retry_if_exception_type(StoreTransient),
        wait=wait_exponential_jitter(initial=STORE_BACKOFF_FIRST_S, max=STORE_BACKOFF_MAX_S),
        stop=stop_after_delay(limit_s),
        before_sleep=_log_store_wait,
        reraise=True,
    )
    return retrying(action)


def _count_store_alert(name: str) -> None:
    """One more ``name`` in the queue-alerts hash (``sgr_store_waits_total``,
    ``sgr_store_requeues_total``); a figure, never worth failing the job for."""
    runtime = installed()
    if runtime is not None:
        with contextlib.suppress(redis.RedisError):
            runtime.client.hincrby(runtime.keys.queue_alerts, name, 1)


def _survives_store_outage(func: Callable[..., T]) -> Callable[..., T]:
    """A job function that outlives the hot store going away: the whole job is run again with
    backoff while the store is unavailable for a moment (every step is idempotent by event id:
    what committed replays, nothing is recorded twice), up to ``SGR_STORE_RETRY_S``; then the
    job goes back to the queue with its attempt given back and the worker takes the next one. A
    store that refuses this worker for good (``StoreUnavailable``) stops it, non-zero."""

    @functools.wraps(func)
    def job_function(*args: Any, **kwargs: Any) -> T:
        tries = 0

        def attempt() -> T:
            nonlocal tries
            tries += 1
            return func(*args, **kwargs)

        try:
            result = retry_store(attempt, _store_retry_limit())
        except StoreTransient as exc:
            log.error("job_requeued_store_unavailable", error=redact_text(str(exc))[:300])
            _give_back_attempt(get_current_job())
            _count_store_alert("store_requeues")
            raise
        except StoreUnavailable as exc:
            stop_worker(str(exc))
            raise
        if tries > 1:
            _count_store_alert("store_waits")
        return result

    return job_function


def _utc(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def job_info(job: Job | None, max_attempts: int) -> JobInfo:
    if job is None:
        return JobInfo()
    left = job.retries_left or 0
    return JobInfo(
        job_id=job.id,
        enqueued_at=_utc(job.enqueued_at),
        started_at=_utc(job.started_at),
        attempt=max(1, max_attempts - left),
    )


def dead_letter(
    runtime: Runtime,
    payload: Any,
    error: str,
    job: Job | None,
    index: int | None = None,
    kind: str = "failed",
) -> bool:
    """Record the event's outcome as a dead letter (hot store and the Redis list) and publish it
    on the outcome stream."""
    return deadletter.record(
        runtime.deps.hot,
        runtime.dead_letters,
        payload,
        error,
        job_id=job.id if job else None,
        attempts=job_info(job, runtime.settings.max_attempts).attempt,
        now=runtime.deps.clock(),
        index=index,
        kind=kind,
        sink=runtime.deps.outbox,
    )


def _wait_for_redis(client: redis.Redis, limit_s: float) -> bool:
    deadline = time.monotonic() + limit_s
    while True:
        try:
            return bool(client.ping())
        except (redis.ConnectionError, redis.TimeoutError):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.25)


class BatchFailed(RuntimeError):
    """Some events of a batch job failed and will be retried with the job (the others are done
    and replay as no-ops)."""


def _bind(job: Job | None) -> None:
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(job_id=job.id if job else None)


def _run(
    runtime: Runtime, job: Job | None, events: list[CartEvent], due: bool = False
) -> list[Result]:
    """The runner over the job's valid events. Redis is only used after the commit (to
    publish): on a Redis error, wait for it to come back, then run again, which replays the
    committed outcomes and publishes them (a stock worker that hits a Redis outage while finishing
    a job exits; riding out a short restart here keeps it alive). A store that cannot be written
    is not the events' fault: the job function handles it (``_survives_store_outage``)."""
    info = job_info(job, runtime.settings.max_attempts)
    if due:
        info = replace(info, due=True)
    concurrency = runtime.settings.llm_concurrency
    try:
        return run(events, runtime.deps, info, concurrency)
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        log.warning("redis_unavailable", error=str(exc)[:200])
        _wait_for_redis(runtime.client, REDIS_WAIT_S)
        return run(events, runtime.deps, info, concurrency)


@_survives_store_outage
def refuse(
    reason: str, func_name: str | None, raw: bytes | None, *args: Any, **kwargs: Any
) -> dict[str, Any]:
    """What a job runs instead of a function that is not one of the project's job functions
    (``worker/safejob.py``): nothing but a dead letter with the reason (the job's arguments as
    its payload; raw bytes when its data could not be read) and one more ``refused_jobs``."""
    runtime = for_job()
    job = get_current_job()
    _bind(job)
    if job is not None:
        job.retries_left = 0  # a refusal does not get better by retrying
    if raw is not None:
        event_id = deadletter.quarantine(
            runtime.dead_letters,
            runtime.keys.queue_alerts,
            raw,
            f"job {job.id if job else '?'}",
            f"refused: {reason}",
            runtime.deps.clock(),
        )
    else:
        payload = {"function": func_name, "args": list(args), "kwargs": kwargs}
        dead_letter(runtime, payload, f"refused: {reason}", job, kind="refused_job")
        event_id = deadletter.payload_event_id(payload, job.id if job else None)
    runtime.client.hincrby(runtime.keys.queue_alerts, "refused_jobs", 1)
    log.error("job_refused", reason=reason, function=func_name, event_id=event_id)
    return {"refused": reason, "event_id": event_id}


def _failed(
    runtime: Runtime, job: Job | None, payload: Any, exc: Exception, index: int | None
) -> bool:
    """An event whose processing raised: logged; on the job's last attempt, its dead letter (with
    its own payload, requeueable). True when the job will be retried."""
    last_attempt = job is None or not job.retries_left
    error = redact_text(f"{type(exc).__name__}: {exc}")
    log.error("event_failed", error=error[:300], last_attempt=last_attempt, exc_info=exc)
    if last_attempt:
        dead_letter(runtime, payload, error, job, index)
    return not last_attempt


@_survives_store_outage
def handle_event(payload: Any) -> dict[str, Any]:
    """Process one cart event; the RQ job's result is the outcome as a dict."""
    runtime = for_job()
    job = get_current_job()
    _bind(job)
    try:
        event = parse_event(payload, runtime.deps.clock(), runtime.settings.time_limits())
    except InvalidEvent as exc:
        dead_letter(runtime, payload, redact_text(str(exc)), job, kind="invalid_event")
        if job is not None:
            job.retries_left = 0  # bad input does not get better by retrying
        raise
    structlog.contextvars.bind_contextvars(
        event_id=event.event_id, session_id=event.session_id, user_id=event.user_id
    )
    result = _run(runtime, job, [event])[0]
    if isinstance(result, Exception):
        _failed(runtime, job, payload, result, None)
        raise result
    return result.as_dict()


@_survives_store_outage
def handle_batch(payloads: Any) -> dict[str, Any]:
    """Process up to N cart events and customer messages in one RQ job, each event to its own
    outcome, a session's events in the order given (the runner: one read and one write
    transaction per wave, one publication, the engine asked for the events concurrently).

    One event's failure never fails the others: an invalid event becomes a dead letter at once;
    an event whose processing raised is retried with the job (the events already done replay as
    no-ops), and becomes a dead letter of its own when the job is out of attempts.
    """
    runtime = for_job()
    job = get_current_job()
    _bind(job)
    if not isinstance(payloads, list):
        dead_letter(
            runtime, payloads, "batch job: expected a list of events", job, kind="invalid_event"
        )
        return {"events": 0, "outcomes": {}, "failed": 0}
    return _batch(runtime, job, payloads)


@_survives_store_outage
def handle_due(event_ids: Any) -> dict[str, Any]:
    """Decide scheduled abandonments that are due (docs/recovery.md): the job claims them in the
    hot store (one transaction; a decision another live job holds, or one decided already, is
    skipped), then they go through the one runner as a batch whose cart handler decides each on
    its session's newest state. Failures are retried and dead-lettered as a batch's are. An
    empty list rebuilds the due set from the hot store (a Redis that came back empty)."""
    runtime = for_job()
    job = get_current_job()
    _bind(job)
    if not isinstance(event_ids, list) or not all(isinstance(e, str) for e in event_ids):
        dead_letter(runtime, event_ids, "due job: expected a list of event ids", job)
        return {"events": 0, "outcomes": {}, "failed": 0}
    if not event_ids:  # a worker found Redis without the due set's rebuild: rebuild it
        restored, moved = Reaper(runtime).restore_due()
        return {"events": 0, "outcomes": {}, "failed": 0, "restored": restored, "moved": moved}
    claimant = job.id if job is not None else f"direct:{os.getpid()}"
    claimed = runtime.deps.hot.claim_due(  # a store away: the whole job again, with backoff
        event_ids, claimant, runtime.deps.clock(), runtime.settings.claim_lease_s
    )
    payloads = []
    for event_id, payload, _due, claims in claimed:
        if claims > MAX_CLAIMS_PER_ATTEMPT * runtime.settings.max_attempts:
            # claimed again and again, never decided (its job dies with its worker each time)
            error = f"scheduled decision claimed {claims} times without a decision"
            dead_letter(runtime, json.loads(payload), error, job)
            log.error("due_decision_given_up", event_id=event_id, claims=claims)
        else:
            payloads.append(json.loads(payload))
    return _batch(runtime, job, payloads, due=True) | {"claimed": len(claimed)}


def _batch(
    runtime: Runtime, job: Job | None, payloads: list[Any], due: bool = False
) -> dict[str, Any]:
    """A batch's events through the runner, each to its own outcome (``handle_batch``, and
    ``handle_due`` with the scheduled decisions it claimed)."""
    counts: dict[str, int] = {}
    events: list[CartEvent] = []
    places: list[int] = []  # each valid event's position in the job's payload
    for index, payload in enumerate(payloads):
        try:
            # a due decision's event was checked against the clock when it arrived
            now, limits = (None, None) if due else (runtime.deps.clock(), runtime.settings.time_limits())  # fmt: skip
            events.append(parse_event(payload, now, limits))
            places.append(index)
        except InvalidEvent as exc:
            if dead_letter(runtime, payload, redact_text(str(exc)), job, index, "invalid_event"):
                counts["dead_letter"] = counts.get("dead_letter", 0) + 1
    results = _run(runtime, job, events, due)
    failed: list[str] = []
    retry = False
    for event, index, result in zip(events, places, results, strict=True):
        if isinstance(result, Exception):
            failed.append(event.event_id)
            retry = _failed(runtime, job, payloads[index], result, index) or retry
        else:
            counts[result.outcome] = counts.get(result.outcome, 0) + 1
    if failed and retry:
        raise BatchFailed(f"{len(failed)} of {len(payloads)} events failed: {failed[:5]}")
    return {"events": len(payloads), "outcomes": counts, "failed": len(failed)}
