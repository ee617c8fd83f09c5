"""Dead letters: events that could not be processed, with their error, kept in a Redis list and
recorded as the event's outcome in the hot store. ``sgr dead-letters`` lists and requeues them."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import redis

MAX_PAYLOAD_CHARS = 4096


@dataclass(frozen=True)
class DeadLetter:
    event_id: str
    error: str
    job_id: str | None
    at: str
    payload: Any
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


class DeadLetters:
    def __init__(self, client: redis.Redis, key: str) -> None:
        self.client = client
        self.key = key

    def push(
        self, event_id: str, error: str, job_id: str | None, at: datetime, payload: Any
    ) -> None:
        letter = DeadLetter(event_id, error, job_id, at.isoformat(), clip_payload(payload))
        self.client.rpush(self.key, letter.to_json())

    def list(self, limit: int = 100) -> list[DeadLetter]:
        items = self.client.lrange(self.key, 0, limit - 1)
        return [
            DeadLetter(**json.loads(item), raw=item)
            for item in items  # type: ignore[union-attr]
        ]

    def remove(self, letter: DeadLetter) -> bool:
        """Remove exactly the stored item ``letter`` was read from (not a re-serialisation of it,
        which need not match byte for byte). True if it was still there."""
        item = letter.raw if letter.raw is not None else letter.to_json()
        return int(self.client.lrem(self.key, 1, item)) == 1  # type: ignore[arg-type]

    def count(self) -> int:
        return int(self.client.llen(self.key))  # type: ignore[arg-type]
