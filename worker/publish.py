"""The outbox's way out: a committed offer goes to a Redis Stream (durable, for consumer groups)
and is announced on a Pub/Sub channel (for live listeners), exactly once per offer id."""

from __future__ import annotations

import json
from typing import Any

import redis

PUBLISHED_MARK_TTL_S = 30 * 24 * 3600
STREAM_FIELDS = (
    "offer_id",
    "event_id",
    "session_id",
    "user_id",
    "discount_pct",
    "cap_pct",
    "currency",
    "code",
    "expires_at",
    "message",
    "engine",
    "model",
    "created_at",
)


class Publisher:
    def __init__(self, client: redis.Redis, stream: str, channel: str) -> None:
        self.client = client
        self.stream = stream
        self.channel = channel

    def _mark_key(self, offer_id: str) -> str:
        return f"{self.stream}:published:{offer_id}"

    def publish(self, offer: dict[str, Any]) -> bool:
        """Add the offer to the stream unless it is there already. True if this call added it.

        A marker key and the XADD are written in one MULTI/EXEC under WATCH, so a retry after a
        crash between Redis and SQLite never adds the same offer twice.
        """
        entry = {k: "" if offer.get(k) is None else str(offer[k]) for k in STREAM_FIELDS}
        mark = self._mark_key(entry["offer_id"])
        with self.client.pipeline(transaction=True) as pipe:
            while True:
                try:
                    pipe.watch(mark)
                    if pipe.exists(mark):
                        pipe.unwatch()
                        return False
                    pipe.multi()
                    pipe.set(mark, "1", ex=PUBLISHED_MARK_TTL_S)
                    pipe.xadd(self.stream, entry)  # type: ignore[arg-type]
                    pipe.publish(self.channel, json.dumps(entry))
                    pipe.execute()
                    return True
                except redis.WatchError:
                    continue
