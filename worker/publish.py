"""The way out to Redis: a committed offer goes to a Redis Stream (durable, for consumer groups)
and is announced on a Pub/Sub channel (for live listeners), exactly once per offer id; every
event's outcome goes to the outcome stream, exactly once per recorded outcome (no channel)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import redis

from worker.domain.model import Offer, OutcomeNotice
from worker.domain.rules import public_reasoning
from worker.keys import Keys

PUBLISHED_MARK_TTL_S = 30 * 24 * 3600
# One or many entries in one call: for each entry, set its marker (NX) and only then add it to
# its stream and announce it. KEYS: per entry, its stream and its marker. ARGV: marker ttl, maxlen
# (0 = no trim), then per entry: its channel (empty: no announcement, as on the outcome stream),
# its announcement, its number of field/value items, the items. Returns 1 or 0 per entry (added
# now, or there already).
PUBLISH_ONCE = """
local ttl, maxlen = ARGV[1], tonumber(ARGV[2])
local pos, added = 3, {}
for i = 1, #KEYS, 2 do
  local channel, announcement, n = ARGV[pos], ARGV[pos + 1], tonumber(ARGV[pos + 2])
  local entry = {}
  for j = 1, n do entry[j] = ARGV[pos + 2 + j] end
  pos = pos + 3 + n
  if redis.call('SET', KEYS[i + 1], '1', 'NX', 'EX', ttl) then
    if maxlen > 0 then
      redis.call('XADD', KEYS[i], 'MAXLEN', '~', maxlen, '*', unpack(entry))
    else
      redis.call('XADD', KEYS[i], '*', unpack(entry))
    end
    if channel ~= '' then redis.call('PUBLISH', channel, announcement) end
    added[#added + 1] = 1
  else
    added[#added + 1] = 0
  end
end
return added
"""
# One entry to publish: its stream, its exactly-once marker, its channel ("" for none), fields.
Entry = tuple[str, str, str, dict[str, str]]
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

    def publish_many(
        self, offers: Sequence[Offer], outcomes: Sequence[OutcomeNotice] = ()
    ) -> list[bool]:
        """``publish`` for many offers, and the outcomes of their run, in one round trip (one
        script call per ``PUBLISH_CHUNK`` entries, so a batch of 50 costs Redis one EVALSHA
        besides each entry's SET and XADD and each offer's PUBLISH). True for each entry this
        call added (the offers', then the outcomes')."""
        entries = [self._offer_entry(o) for o in offers]
        entries += [self._outcome_entry(n) for n in outcomes]
        return self._once(entries)

    def publish_outcomes(self, notices: Sequence[OutcomeNotice]) -> list[bool]:
        """Each event's outcome on the outcome stream once per ``outcome_id`` (the same script:
        marker first, then the entry; no announcement). True for each one this call added."""
        return self._once([self._outcome_entry(n) for n in notices])

    def missing_outcomes(self, outcome_ids: list[str]) -> list[str]:
        """The outcomes among these whose marker Redis lost (and their entry with it)."""
        with self.client.pipeline(transaction=False) as pipe:
            for outcome_id in outcome_ids:
                pipe.exists(self.keys.outcome_mark(outcome_id))
            found = pipe.execute()
        return [o for o, there in zip(outcome_ids, found, strict=True) if not there]

    def _offer_entry(self, offer: Offer) -> Entry:
        keys = self.keys
        entry = self.public(offer.stream_entry())
        if self.publish_reasoning:  # its texts the message checks refuse are withheld
            entry["reasoning"] = json.dumps(public_reasoning(offer.reasoning))
        return keys.offers_stream, keys.published_mark(offer.offer_id), keys.offers_channel, entry

    def _outcome_entry(self, notice: OutcomeNotice) -> Entry:
        keys = self.keys
        return keys.outcomes_stream, keys.outcome_mark(notice.outcome_id), "", notice.stream_entry()

    def _once(self, entries: Sequence[Entry]) -> list[bool]:
        """Entries onto their streams once per marker, one script call per ``PUBLISH_CHUNK``."""
        added: list[bool] = []
        for start in range(0, len(entries), PUBLISH_CHUNK):
            keys: list[str] = []
            args: list[Any] = [self.mark_ttl_s, self.maxlen]
            for stream, mark, channel, entry in entries[start : start + PUBLISH_CHUNK]:
                keys += [stream, mark]
                args += [channel, json.dumps(entry), 2 * len(entry)]
                args += [item for pair in entry.items() for item in pair]
            flags = self._script(keys=keys, args=args)
            added.extend(bool(flag) for flag in flags)
        return added

    def publish_entry(self, entry_id: str, entry: dict[str, str]) -> bool:
        """Any entry on the stream once per ``entry_id``, as ``publish`` does for an offer (a
        negotiation reply without a price: ``Turn.stream_entry``). True if this call added it."""
        keys = self.keys
        mark = keys.published_mark(entry_id)
        return self._once([(keys.offers_stream, mark, keys.offers_channel, self.public(entry))])[0]
