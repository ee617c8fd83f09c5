"""Dead letters: events that could not be processed, with their error, kept in a Redis list and
recorded as the event's outcome in the hot store. ``sgr dead-letters`` lists and requeues them."""

from __future__ import annotations

import json
from dataclasses import dataclass
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

    def to_json(self) -> str:
        return json.dumps(self.__dict__, default=str)


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
        raw = self.client.lrange(self.key, 0, limit - 1)
        return [DeadLetter(**json.loads(item)) for item in raw]  # type: ignore[union-attr]

    def remove(self, letter: DeadLetter) -> None:
        self.client.lrem(self.key, 1, letter.to_json())

    def count(self) -> int:
        return int(self.client.llen(self.key))  # type: ignore[arg-type]
