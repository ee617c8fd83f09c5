"""Dead letters: events that could not be processed, with their error and payload, kept in a Redis
list and recorded as the event's outcome in the hot store. ``sgr dead-letters`` lists, requeues
and replaces them.

``record`` keeps the promise that every accepted event ends in one recorded outcome even when the
hot store cannot be written: the letter still goes to the Redis list (durable with AOF), marked
``store_failed``, and is counted under the store-failures key that ``sgr status`` reads.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import redis
import structlog

from stores.base import HotStore

MAX_PAYLOAD_CHARS = 4096
log = structlog.get_logger("sgr.deadletter")


@dataclass(frozen=True)
class DeadLetter:
    event_id: str
    error: str
    job_id: str | None
    at: str
    payload: Any
    store_failed: bool = False
    # the list item as stored (what remove() deletes)
    raw: bytes | str | None = field(default=None, repr=False, compare=False)

    def to_json(self) -> str:
        fields = {k: v for k, v in self.__dict__.items() if k != "raw"}
        return json.dumps(fields, default=str)


def clip_payload(payload: Any) -> Any:
    """Keep a dead letter small: a 10 MB message is stored as its first few KB and its size."""
    text = json.dumps(payload, default=str)
    if len(text) <= MAX_PAYLOAD_CHARS:
        return payload
    return {"truncated": True, "size": len(text), "head": text[:MAX_PAYLOAD_CHARS]}


def payload_event_id(payload: Any, job_id: str | None, index: int | None = None) -> str:
    """The event id a dead letter is filed under: the payload's own if it has a usable one, else
    the job's (and the payload's place in a batch job)."""
    event_id = payload.get("event_id") if isinstance(payload, dict) else None
    if (
        isinstance(event_id, str)
        and event_id.strip() == event_id != ""
        and len(event_id) <= 128
        and event_id.isprintable()
    ):
        return event_id
    where = f"job:{job_id or 'none'}"
    return where if index is None else f"{where}:{index}"


class DeadLetters:
    def __init__(self, client: redis.Redis, key: str, failures_key: str | None = None) -> None:
        self.client = client
        self.key = key
        self.failures_key = failures_key or f"{key}:store-failures"

    def push(
        self,
        event_id: str,
        error: str,
        job_id: str | None,
        at: datetime,
        payload: Any,
        store_failed: bool = False,
    ) -> None:
        letter = DeadLetter(
            event_id, error, job_id, at.isoformat(), clip_payload(payload), store_failed
        )
        with self.client.pipeline() as pipe:
            pipe.rpush(self.key, letter.to_json())
            if store_failed:
                pipe.incr(self.failures_key)
            pipe.execute()

    def list(self, limit: int = 100) -> list[DeadLetter]:
        items = self.client.lrange(self.key, 0, limit - 1)
        out = []
        for item in items:  # type: ignore[union-attr]
            data = json.loads(item)
            out.append(DeadLetter(**data, raw=item))
        return out

    def remove(self, letter: DeadLetter) -> bool:
        """Remove exactly the stored item ``letter`` was read from. True if it was still there."""
        item = letter.raw if letter.raw is not None else letter.to_json()
        return int(self.client.lrem(self.key, 1, item)) == 1  # type: ignore[arg-type]

    def count(self) -> int:
        return int(self.client.llen(self.key))  # type: ignore[arg-type]

    def store_failures(self) -> int:
        return int(self.client.get(self.failures_key) or 0)  # type: ignore[arg-type]


def record(
    hot: HotStore,
    letters: DeadLetters,
    payload: Any,
    error: str,
    *,
    job_id: str | None,
    attempts: int,
    now: datetime,
    index: int | None = None,
) -> bool:
    """Record a dead letter as the event's one outcome; False if the event already had one.

    The hot store first (the outcome's home); if it cannot be written, the Redis list still gets
    the letter, marked ``store_failed``, so the outcome is never lost.
    """
    event_id = payload_event_id(payload, job_id, index)
    error = error[:2000]
    try:
        recorded = hot.record_outcome(
            event_id=event_id,
            outcome="dead_letter",
            error=error,
            finished_at=now,
            attempts=attempts,
        )
    except Exception as exc:  # the store is unwritable: the list is the durable place left
        log.error("dead_letter_store_failed", event_id=event_id, store_error=str(exc)[:300])
        letters.push(event_id, error, job_id, now, payload, store_failed=True)
        return True
    if not recorded:  # the event already has its one outcome (e.g. committed, then Redis failed)
        log.warning("dead_letter_skipped", event_id=event_id, error=error[:500])
        return False
    letters.push(event_id, error, job_id, now, payload)
    log.error("dead_letter", event_id=event_id, error=error[:500])
    return True
