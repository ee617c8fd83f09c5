"""The way out to Redis: a committed offer goes to a Redis Stream (durable, for consumer groups)
and is announced on a Pub/Sub channel (for live listeners), exactly once per offer id."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import redis

from worker.domain.model import Offer
from worker.domain.rules import public_reasoning
from worker.keys import Keys

PUBLISHED_MARK_TTL_S = 30 * 24 * 3600
# One or many offers in one call: for each offer, set its marker (NX) and only then add its entry
# and announce it. KEYS: the stream, then one marker per offer. ARGV: marker ttl, channel, maxlen
# (0 = no trim), then per offer: its announcement, its number of field/value items, the items.
# Returns 1 or 0 per offer (added now, or there already).
PUBLISH_ONCE = """
local ttl, channel, maxlen = ARGV[1], ARGV[2], tonumber(ARGV[3])
local pos, added = 4, {}
for i = 2, #KEYS do
  local announcement, n = ARGV[pos], tonumber(ARGV[pos + 1])
  local entry = {}
  for j = 1, n do entry[j] = ARGV[pos + 1 + j] end
  pos = pos + 2 + n
  if redis.call('SET', KEYS[i], '1', 'NX', 'EX', ttl) then
    if maxlen > 0 then
      redis.call('XADD', KEYS[1], 'MAXLEN', '~', maxlen, '*', unpack(entry))
    else
      redis.call('XADD', KEYS[1], '*', unpack(entry))
    end
    redis.call('PUBLISH', channel, announcement)
    added[#added + 1] = 1
  else
    added[#added + 1] = 0
  end
end
return added
"""
# Offers per script call: a batch job's offers go in one call; a longer list in a few.
PUBLISH_CHUNK = 200
# Fields kept off the stream unless asked for: the cap is the most a customer could be given, and
# a consumer that shows or forwards it tells the customer what to haggle for (SGR_PUBLISH_CAP=1
# publishes it; the hot store keeps it either way).
PRIVATE_FIELDS = ("cap_pct",)


class Publisher:
    def __init__(
        self,
        client: redis.Redis,
        keys: Keys,
        *,
        mark_ttl_s: int = PUBLISHED_MARK_TTL_S,
        maxlen: int = 0,
        publish_cap: bool = False,
        publish_reasoning: bool = False,
    ) -> None:
        self.client = client
        self.keys = keys
        self.mark_ttl_s = mark_ttl_s
        self.maxlen = maxlen
        self.publish_cap = publish_cap
        self.publish_reasoning = publish_reasoning  # SGR_PUBLISH_REASONING: off by default
        self._script = client.register_script(PUBLISH_ONCE)

    def public(self, entry: dict[str, str]) -> dict[str, str]:
        """The entry as the stream gets it: without ``PRIVATE_FIELDS`` unless ``publish_cap``."""
        if self.publish_cap:
            return entry
        return {k: v for k, v in entry.items() if k not in PRIVATE_FIELDS}

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
        return self.publish_many([offer])[0]

    def publish_many(self, offers: Sequence[Offer]) -> list[bool]:
        """``publish`` for many offers in one round trip (one script call per ``PUBLISH_CHUNK``
        offers, so a batch of 50 costs Redis one EVALSHA besides each offer's SET, XADD and
        PUBLISH). True for each offer this call added."""
        added: list[bool] = []
        for start in range(0, len(offers), PUBLISH_CHUNK):
            chunk = offers[start : start + PUBLISH_CHUNK]
            keys = [self.keys.offers_stream]
            args: list[Any] = [self.mark_ttl_s, self.keys.offers_channel, self.maxlen]
            for offer in chunk:
                entry = self.public(offer.stream_entry())
                if self.publish_reasoning:  # its texts the message checks refuse are withheld
                    entry["reasoning"] = json.dumps(public_reasoning(offer.reasoning))
                keys.append(self.keys.published_mark(offer.offer_id))
                args += [json.dumps(entry), 2 * len(entry)]
                args += [item for pair in entry.items() for item in pair]
            flags = self._script(keys=keys, args=args)
            added.extend(bool(flag) for flag in flags)
        return added

    def publish_entry(self, entry_id: str, entry: dict[str, str]) -> bool:
        """Any entry on the stream once per ``entry_id``, as ``publish`` does for an offer (a
        negotiation reply without a price: ``Turn.stream_entry``). True if this call added it."""
        entry = self.public(entry)
        items = [item for pair in entry.items() for item in pair]
        flags = self._script(
            keys=[self.keys.offers_stream, self.keys.published_mark(entry_id)],
            args=[
                self.mark_ttl_s,
                self.keys.offers_channel,
                self.maxlen,
                json.dumps(entry),
                len(items),
                *items,
            ],
        )
        return bool(flags[0])
