"""Putting cart events on the RQ queue: validate first, then bulk-enqueue in pipelines."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from rq import Queue, Retry

from worker.events import CartEvent, InvalidEvent, parse_event

JOB_FUNC = "worker.jobs.handle_event"


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
    batch: int = 500,
    validate: bool = True,
) -> EnqueueReport:
    """Enqueue events as ``worker.jobs.handle_event`` jobs, ``batch`` per Redis round trip.

    Invalid events are not enqueued: each is reported with its position and an error naming the
    field and the value. ``validate=False`` sends payloads as they are (to test the worker's own
    handling of bad input).
    """
    report = EnqueueReport()
    pending: list[Any] = []

    def flush() -> None:
        if not pending:
            return
        with queue.connection.pipeline() as pipe:
            jobs = queue.enqueue_many(pending, pipeline=pipe)
            pipe.execute()
        report.job_ids.extend(job.id for job in jobs)
        pending.clear()

    retry = Retry(max=max_attempts - 1) if max_attempts > 1 else None
    for position, item in enumerate(events):
        if isinstance(item, CartEvent):
            payload = item.model_dump(mode="json", exclude_none=True)
        else:
            payload = item
        if validate:
            try:
                parse_event(payload)
            except InvalidEvent as exc:
                report.rejected.append((position, str(exc)))
                continue
        event_id = payload.get("event_id") if isinstance(payload, dict) else None
        report.accepted.append(str(event_id))
        pending.append(
            Queue.prepare_data(
                JOB_FUNC,
                args=(payload,),
                timeout=job_timeout,
                retry=retry,
                description=f"cart event {event_id}",
            )
        )
        if len(pending) >= batch:
            flush()
    flush()
    return report
