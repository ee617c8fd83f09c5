"""A thin bridge for producers that are not Python: events pushed as JSON on a Redis list (one
event per element: ``redis-cli RPUSH sgr:events:in '{"event_id": ...}'``) become RQ jobs through
``producers.enqueue.enqueue_events``, validated the same way. A refused element goes to the
rejected list as ``{"payload": <text>, "error": <one line naming the field and value>}``. A poison
element (bytes that are not UTF-8, JSON nested deeper than any event) cannot be kept as text: it
becomes a dead letter holding its raw bytes (base64) and is counted (``poison_items`` in the
queue-alerts hash); the elements behind it are enqueued as usual. Each refused element also
gets its one entry on the outcome stream (``outcome`` "rejected", the contract's error naming
the field and value), keyed by its event id (``raw:<digest>`` when it has none) and published
once per element's bytes (a marker, as for every outcome).

Nothing is lost when the bridge dies: each round first moves elements (LMOVE) onto the bridge's
own processing list, enqueues them, then deletes that list; a restarted bridge of the same name
enqueues what was left there first. An event enqueued twice that way takes effect once (the
pipeline is idempotent by ``event_id``).

Run it with ``sgr bridge`` (``--once`` to stop when the list is empty).
"""

from __future__ import annotations

import hashlib
import json
import socket
from datetime import UTC, datetime
from typing import Any

import redis
from rq import Queue

from producers.enqueue import enqueue_events
from worker.deadletter import (
    DeadLetters,
    PoisonItem,
    parse_item,
    payload_event_id,
    quarantine,
    raw_id,
)
from worker.domain.events import EventType, TimeLimits
from worker.domain.model import OutcomeNotice
from worker.keys import Keys
from worker.publish import Publisher
from worker.runtime import publisher
from worker.settings import load_settings

EVENT_TYPES = frozenset(t.value for t in EventType)


def rejection(item: bytes, payload: Any, error: str, now: datetime) -> OutcomeNotice:
    """The outcome stream's entry of an element the bridge refused: under the event's own id when
    it has a usable one (else ``raw:<digest>`` of its bytes); its entry id is a digest of the
    bytes, so the same element refused again (a restarted bridge) is published once, and a fixed
    event sent under the same id is an outcome of its own."""
    event_id = payload_event_id(payload, None) if isinstance(payload, dict) else ""
    if not event_id or event_id.startswith("job:"):
        event_id = raw_id(item)
    kind = "not_json" if error.startswith("not JSON") else "invalid_event"
    fields = payload if isinstance(payload, dict) else {}
    event_type = fields.get("type")
    return OutcomeNotice(
        event_id=event_id,
        outcome="rejected",
        at=now,
        error_kind=kind,
        error=error,
        event_type=event_type if event_type in EVENT_TYPES else None,
        key="rej-" + hashlib.sha256(item).hexdigest()[:24],
    )


class Bridge:
    def __init__(
        self,
        client: redis.Redis,
        queue: str,
        key: str,
        rejected: str,
        *,
        name: str | None = None,
        time_limits: TimeLimits | None = None,
        block_s: int = 1,
        dead_letters: str | None = None,
        alerts: str | None = None,
        outcomes: Publisher | None = None,
        rejected_max: int = 10_000,
        max_attempts: int = 3,
        job_timeout: int = 120,
        result_ttl: int = 60,
        failure_ttl: int = 86_400,
    ) -> None:
        self.client, self.key, self.rejected = client, key, rejected
        self.rejected_max = rejected_max  # the rejected list keeps its newest this many
        self.job_options = {
            "max_attempts": max_attempts,
            "job_timeout": job_timeout,
            "result_ttl": result_ttl,
            "failure_ttl": failure_ttl,
        }
        if dead_letters is None or alerts is None or outcomes is None:
            settings = load_settings()
            keys = Keys.from_settings(settings)
            dead_letters = dead_letters or keys.dead_letters
            alerts = alerts or keys.queue_alerts
            outcomes = outcomes or publisher(client, settings, keys)
        self.letters = DeadLetters(client, dead_letters)
        self.alerts = alerts
        self.outcomes = outcomes
        self.queue = Queue(queue, connection=client)
        self.processing = f"{key}:processing:{name or socket.gethostname()}"
        self.time_limits = time_limits
        self.block_s = block_s
        self.totals = {"read": 0, "enqueued": 0, "rejected": 0, "poison": 0}

    def _take(self, batch: int, block: bool) -> list[bytes]:
        """Up to ``batch`` elements moved onto the processing list (what is there already first)."""
        left: Any = self.client.lrange(self.processing, 0, -1)
        if left:
            return list(left)
        first: Any = (
            self.client.blmove(self.key, self.processing, self.block_s, "LEFT", "RIGHT")
            if block
            else self.client.lmove(self.key, self.processing, "LEFT", "RIGHT")
        )
        if first is None:
            return []
        pipe = self.client.pipeline(transaction=False)
        for _ in range(batch - 1):
            pipe.lmove(self.key, self.processing, "LEFT", "RIGHT")
        return [first, *(x for x in pipe.execute() if x is not None)]

    def round(self, batch: int = 100, block: bool = True) -> int:
        """Move, enqueue and reject one round of elements; how many were read."""
        raw = self._take(batch, block)
        if not raw:
            return 0
        events: list[tuple[int, bytes, Any]] = []
        refused: list[tuple[int, bytes, str]] = []
        payloads: dict[int, Any] = {}
        poison: list[tuple[bytes, str]] = []
        for index, item in enumerate(raw):
            try:
                events.append((index, item, parse_item(item)))
            except PoisonItem as exc:
                if str(exc).startswith("not JSON"):  # text: kept readable in the rejected list
                    refused.append((index, item, str(exc)))
                else:
                    poison.append((item, str(exc)))
        report = enqueue_events(
            self.queue,
            [payload for _, _, payload in events],
            time_limits=self.time_limits,
            **self.job_options,  # type: ignore[arg-type]
        )
        for position, error in report.rejected:
            index, item, payload = events[position]
            refused.append((index, item, error))
            payloads[index] = payload
        refused.sort()  # in the order they were pushed
        pipe = self.client.pipeline(transaction=True)
        for _, item, error in refused:
            text = item.decode("utf-8", "replace")[:4096]
            pipe.rpush(self.rejected, json.dumps({"payload": text, "error": error}))
        if refused:  # bounded: the newest SGR_REJECTED_MAX stay
            pipe.ltrim(self.rejected, -self.rejected_max, -1)
        pipe.execute()
        now = datetime.now(UTC)
        # before the processing list goes: a crash re-reads them, the markers keep them once
        self.outcomes.publish_outcomes(
            [rejection(item, payloads.get(index), error, now) for index, item, error in refused]
        )
        for item, error in poison:  # before the processing list goes: a crash re-reads them
            quarantine(self.letters, self.alerts, item, self.key, error, now)
        self.client.delete(self.processing)
        self.totals["read"] += len(raw)
        self.totals["enqueued"] += len(report.accepted)
        self.totals["rejected"] += len(refused)
        self.totals["poison"] += len(poison)
        return len(raw)

    def run(self, batch: int = 100, once: bool = False) -> dict[str, int]:
        """Bridge until interrupted (or, with ``once``, until the list is empty)."""
        while True:
            moved = self.round(batch, block=not once)
            if once and moved == 0:
                return self.totals
