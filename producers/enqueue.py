"""Putting cart events on the RQ queue: the shop's way in. Validate first, then bulk-enqueue in
pipelines; one event per job, or up to ``batch_size`` events per job (``worker.jobs.handle_batch``).

The job payload is plain JSON (the event as documented in the README), so a producer in any
language can enqueue it; ``producers/bridge.py`` turns a Redis list of events into jobs.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from rq import Queue, Retry

from worker.domain.events import CartEvent, InvalidEvent, TimeLimits, parse_event

JOB_FUNC = "worker.jobs.handle_event"
BATCH_FUNC = "worker.jobs.handle_batch"


@dataclass
class EnqueueReport:
    accepted: list[str] = field(default_factory=list)  # event ids
    job_ids: list[str] = field(default_factory=list)
    rejected: list[tuple[int, str]] = field(default_factory=list)  # (position, error)


def enqueue_events(
    queue: Queue,
    events: Iterable[dict[str, Any] | CartEvent],
    *,
    max_attempts: int = 3,
    job_timeout: int = 120,
    result_ttl: int = 60,
    failure_ttl: int = 86_400,
    batch_size: int = 1,
    pipeline_size: int = 500,
    validate: bool = True,
    time_limits: TimeLimits | None = None,
) -> EnqueueReport:
    """Enqueue events as RQ jobs, ``pipeline_size`` jobs per Redis round trip.

    ``batch_size=1`` makes one ``handle_event`` job per event; more puts up to that many events
    into one ``handle_batch`` job (each event still gets its own outcome). Invalid events are not
    enqueued: each is reported with its position and an error naming the field and the value.
    ``validate=False`` sends payloads as they are (to test the worker's own handling of bad input).
    ``result_ttl`` and ``failure_ttl`` (seconds): how long RQ keeps a job's result and a failed job
    (``SGR_JOB_RESULT_TTL_S``, ``SGR_JOB_FAILURE_TTL_S``).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1 (got {batch_size})")
    report = EnqueueReport()
    pending: list[Any] = []
    group: list[Any] = []
    retry = Retry(max=max_attempts - 1) if max_attempts > 1 else None

    def flush() -> None:
        if not pending:
            return
        with queue.connection.pipeline() as pipe:
            jobs = queue.enqueue_many(pending, pipeline=pipe)
            pipe.execute()
        report.job_ids.extend(job.id for job in jobs)
        pending.clear()

    def close_group() -> None:
        if not group:
            return
        if batch_size == 1:
            payload = group[0]
            event_id = payload.get("event_id") if isinstance(payload, dict) else None
            func, args, what = JOB_FUNC, (payload,), f"cart event {event_id}"
        else:
            func, args, what = BATCH_FUNC, (list(group),), f"{len(group)} cart events"
        pending.append(
            Queue.prepare_data(
                func,
                args=args,
                timeout=job_timeout,
                result_ttl=result_ttl,
                failure_ttl=failure_ttl,
                retry=retry,
                description=what,
            )
        )
        group.clear()
        if len(pending) >= pipeline_size:
            flush()

    for position, item in enumerate(events):
        if isinstance(item, CartEvent):
            payload: Any = item.model_dump(mode="json", exclude_none=True)
        else:
            payload = item
        if validate:
            try:
                parse_event(payload, datetime.now(UTC), time_limits)
            except InvalidEvent as exc:
                report.rejected.append((position, str(exc)))
                continue
        event_id = payload.get("event_id") if isinstance(payload, dict) else None
        report.accepted.append(str(event_id))
        group.append(payload)
        if len(group) >= batch_size:
            close_group()
    close_group()
    flush()
    return report
