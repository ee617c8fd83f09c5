"""The way out to Redis: a committed offer goes to a Redis Stream (durable, for consumer groups)
and is announced on a Pub/Sub channel (for live listeners), exactly once per offer id."""

from __future__ import annotations

import json

import redis

from worker.domain.model import Offer
from worker.keys import Keys

PUBLISHED_MARK_TTL_S = 30 * 24 * 3600
# KEYS: marker, stream. ARGV: marker ttl, channel, announcement, maxlen (0 = no trim), then the
# entry's field/value pairs.
PUBLISH_ONCE = """
if not redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then
  return 0
end
if tonumber(ARGV[4]) > 0 then
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[4], '*', unpack(ARGV, 5))
else
  redis.call('XADD', KEYS[2], '*', unpack(ARGV, 5))
end
redis.call('PUBLISH', ARGV[2], ARGV[3])
return 1
"""


class Publisher:
    def __init__(
        self,
        client: redis.Redis,
        keys: Keys,
        *,
        mark_ttl_s: int = PUBLISHED_MARK_TTL_S,
        maxlen: int = 0,
    ) -> None:
        self.client = client
        self.keys = keys
        self.mark_ttl_s = mark_ttl_s
        self.maxlen = maxlen
        self._script = client.register_script(PUBLISH_ONCE)

    def missing(self, offer_ids: list[str]) -> list[str]:
        """The offers among these that Redis does not know as published (their marker is gone:
        Redis lost data, and the stream entry with it, since both are written by one script)."""
        with self.client.pipeline(transaction=False) as pipe:
            for offer_id in offer_ids:
                pipe.exists(self.keys.published_mark(offer_id))
            found = pipe.execute()
        return [offer_id for offer_id, there in zip(offer_ids, found, strict=True) if not there]

    def publish(self, offer: Offer) -> bool:
        """Add the offer to the stream unless it is there already. True if this call added it.

        One Lua script sets a marker key (NX) and only then adds the entry and announces it, in
        one round trip and atomically, so a retry after a crash between Redis and the hot store
        never adds the same offer twice.
        """
        entry = offer.stream_entry()
        fields = [item for pair in entry.items() for item in pair]
        added = self._script(
            keys=[self.keys.published_mark(offer.offer_id), self.keys.offers_stream],
            args=[
                self.mark_ttl_s,
                self.keys.offers_channel,
                json.dumps(entry),
                self.maxlen,
                *fields,
            ],
        )
        return bool(added)
