"""Dead letters: events that could not be processed, with their error and payload, kept in a Redis
list and recorded as the event's outcome in the hot store. ``sgr dead-letters`` lists, requeues
and replaces them.

``record`` files the letter under an error kind (``invalid_event``, ``failed``, ``abandoned``,
``out_of_attempts``, ``refused_job``, ``foreign_item``: what the outcome stream tells the shop;
the error text goes there only for ``invalid_event``, the contract's own words) and hands the
outcome to the outbox (``OutcomeSink``).

``record`` keeps the promise that every accepted event ends in one recorded outcome even when the
hot store cannot be written: the letter still goes to the Redis list (durable with AOF), marked
``store_failed``, and is counted under the store-failures key that ``sgr status`` reads.

Poison items (bytes that are not UTF-8, text that is not JSON or is nested deeper than any event,
a job hash RQ cannot read) never stop a reader: ``parse_item`` says why an item is poison, and
``quarantine`` moves it aside as a dead letter holding its raw bytes (base64), counted under the
queue-alerts key (``poison_items``, and per source).
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

import redis
import structlog

from stores.base import HotStore, StoreTransient
from worker.domain.model import OutcomeNotice

MAX_PAYLOAD_CHARS = 4096
MAX_DEPTH = 32  # an event nests 4 levels deep (cart.items[].field); anything near 32 is hostile
MAX_RAW_BYTES = 2048  # a poison item's dead letter keeps this much of it (base64 fits a letter)
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


class PoisonItem(ValueError):
    """An item no reader can use: not UTF-8, not JSON, or nested too deeply."""


def depth(value: Any, limit: int = MAX_DEPTH) -> int:
    """How deeply ``value`` nests (iteratively: a hostile value cannot exhaust the stack); stops
    counting past ``limit``."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict | list | tuple):
            deepest = max(deepest, level)
            if deepest > limit:
                return deepest
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, level + 1) for child in children)
    return deepest


def parse_item(raw: bytes | str, max_depth: int = MAX_DEPTH) -> Any:
    """One JSON item of a list the project reads, or ``PoisonItem`` saying why it is none."""
    if isinstance(raw, bytes):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise PoisonItem(f"not UTF-8 ({exc.reason} at byte {exc.start})") from None
    else:
        text = raw
    try:
        value = json.loads(text)
    except RecursionError:
        raise PoisonItem(f"JSON nested deeper than {max_depth} levels") from None
    except ValueError as exc:
        raise PoisonItem(f"not JSON: {exc}") from None
    if depth(value, max_depth) > max_depth:
        raise PoisonItem(f"JSON nested deeper than {max_depth} levels")
    return value


def raw_id(raw: bytes) -> str:
    """The id a poison item's dead letter is filed under: ``raw:`` and a digest of its bytes."""
    return "raw:" + hashlib.sha256(raw).hexdigest()[:16]


def quarantine(
    letters: DeadLetters,
    alerts_key: str,
    raw: bytes | str,
    source: str,
    reason: str,
    now: datetime,
) -> str:
    """Move a poison item aside: a dead letter whose payload holds its raw bytes (base64, the
    first ``MAX_RAW_BYTES``) and where it was found, and one more ``poison_items`` in the alerts
    hash. Returns the dead letter's event id (``raw:<digest>``)."""
    data = raw.encode("utf-8", "surrogateescape") if isinstance(raw, str) else bytes(raw)
    event_id = raw_id(data)
    payload = {
        "event_id": event_id,
        "source": source,
        "size": len(data),
        "raw_b64": base64.b64encode(data[:MAX_RAW_BYTES]).decode("ascii"),
    }
    letters.push(event_id, f"poison item on {source}: {reason}", event_id, now, payload)
    with letters.client.pipeline(transaction=False) as pipe:
        pipe.hincrby(alerts_key, "poison_items", 1)
        pipe.hincrby(alerts_key, f"poison_items:{source}", 1)
        pipe.execute()
    log.error("poison_item", source=source, event_id=event_id, reason=reason, size=len(data))
    return event_id


def clip_payload(payload: Any) -> Any:
    """Keep a dead letter small: a 10 MB message is stored as its first few KB and its size."""
    if depth(payload) > MAX_DEPTH:
        return {"truncated": True, "error": f"nested deeper than {MAX_DEPTH} levels"}
    try:
        text = json.dumps(payload, default=str)
    except (ValueError, TypeError) as exc:
        return {"truncated": True, "error": f"not JSON-serializable: {exc}"[:300]}
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


# The kinds of dead letter (``processed_events.error_kind``, the outcome stream's ``error_kind``).
ERROR_KINDS = (
    "invalid_event",  # the contract refused it (its error names the field and value: published)
    "failed",  # its processing raised on the job's last attempt
    "abandoned",  # its worker died and the job is out of attempts
    "out_of_attempts",  # the job failed (e.g. its timeout) on its last attempt
    "refused_job",  # a job naming a function that is not one of the project's
    "foreign_item",  # something other than RQ pushed it onto the queue's list
)


class OutcomeSink(Protocol):
    """Where a recorded outcome goes next: the outbox (``worker/outbox.py``)."""

    def publish_outcomes(self, notices: Sequence[OutcomeNotice], stored: bool = True) -> None: ...


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
    kind: str = "failed",
    sink: OutcomeSink | None = None,
) -> bool:
    """Record a dead letter as the event's one outcome; False if the event already had one.

    The hot store first (the outcome's home); if it cannot be written, the Redis list still gets
    the letter, marked ``store_failed``, so the outcome is never lost. A store gone for a moment
    (``StoreTransient``) is raised instead: the caller tries again once it is back, so that the
    outcome lands where the reconciliation and the metrics look. Then ``sink`` publishes the
    outcome (if Redis fails here, the outbox's next flush does: the record stays unmarked).
    """
    assert kind in ERROR_KINDS, kind
    event_id = payload_event_id(payload, job_id, index)
    error = error[:2000]
    notice = OutcomeNotice(event_id, "dead_letter", now, error_kind=kind, error=error)
    try:
        recorded = hot.record_outcome(
            event_id=event_id,
            outcome="dead_letter",
            error=error,
            error_kind=kind,
            finished_at=now,
            attempts=attempts,
        )
    except StoreTransient:
        raise
    except Exception as exc:  # the store is unwritable: the list is the durable place left
        log.error("dead_letter_store_failed", event_id=event_id, store_error=str(exc)[:300])
        letters.push(event_id, error, job_id, now, payload, store_failed=True)
        _publish(sink, notice, stored=False)
        return True
    if not recorded:  # the event already has its one outcome (e.g. committed, then Redis failed)
        log.warning("dead_letter_skipped", event_id=event_id, error=error[:500])
        return False
    letters.push(event_id, error, job_id, now, payload)
    log.error("dead_letter", event_id=event_id, error=error[:500])
    _publish(sink, notice, stored=True)
    return True


def _publish(sink: OutcomeSink | None, notice: OutcomeNotice, stored: bool) -> None:
    if sink is None:
        return
    try:
        sink.publish_outcomes([notice], stored=stored)
    except Exception as exc:  # Redis or the store: the outbox's flush publishes a stored one
        log.warning("outcome_publish_deferred", event_id=notice.event_id, error=repr(exc)[:200])
