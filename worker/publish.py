"""The outbox's way out: a committed offer goes to a Redis Stream (durable, for consumer groups)
and is announced on a Pub/Sub channel (for live listeners), exactly once per offer id."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import redis

from stores.timefmt import to_text

PUBLISHED_MARK_TTL_S = 30 * 24 * 3600
# KEYS: marker, stream. ARGV: marker ttl, channel, announcement, then the entry's field/value pairs.
PUBLISH_ONCE = """
if not redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then
  return 0
end
redis.call('XADD', KEYS[2], '*', unpack(ARGV, 4))
redis.call('PUBLISH', ARGV[2], ARGV[3])
return 1
"""
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


def _text(value: Any) -> str:
    """A field as the stream carries it; times as the hot store writes them."""
    if value is None:
        return ""
    return to_text(value) if isinstance(value, datetime) else str(value)


class Publisher:
    def __init__(self, client: redis.Redis, stream: str, channel: str) -> None:
        self.client = client
        self.stream = stream
        self.channel = channel
        self._script = client.register_script(PUBLISH_ONCE)

    def _mark_key(self, offer_id: str) -> str:
        return f"{self.stream}:published:{offer_id}"

    def missing(self, offer_ids: list[str]) -> list[str]:
        """The offers among these that Redis does not know as published (their marker is gone:
        Redis lost data, and the stream entry with it, since both are written by one script)."""
        with self.client.pipeline(transaction=False) as pipe:
            for offer_id in offer_ids:
                pipe.exists(self._mark_key(offer_id))
            found = pipe.execute()
        return [offer_id for offer_id, there in zip(offer_ids, found, strict=True) if not there]

    def publish(self, offer: dict[str, Any]) -> bool:
        """Add the offer to the stream unless it is there already. True if this call added it.

        One Lua script sets a marker key (NX) and only then adds the entry and announces it, in
        one round trip and atomically, so a retry after a crash between Redis and SQLite never
        adds the same offer twice.
        """
        entry = {k: _text(offer.get(k)) for k in STREAM_FIELDS}
        fields = [item for pair in entry.items() for item in pair]
        added = self._script(
            keys=[self._mark_key(entry["offer_id"]), self.stream],
            args=[PUBLISHED_MARK_TTL_S, self.channel, json.dumps(entry), *fields],
        )
        return bool(added)
