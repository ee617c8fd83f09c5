"""A per-key rate limit in Redis: fixed windows of ``SGR_API_RATE_WINDOW_S`` seconds, at most
``SGR_API_RATE_LIMIT`` requests each, so every ``sgr api`` process of a fleet counts against the
same number. A request's key record and its count are one script (``KEY_AND_COUNT``: the HGET,
the INCR and, on a window's first request, its EXPIRE), one command and one round trip per
request (``auth.py``): a pipeline of the three costs the event loop about 50 us more."""

from __future__ import annotations

import math
from typing import Any, cast

import redis.asyncio

from worker.keys import Keys

# KEYS[1]: the API keys' hash; KEYS[2]: this window's counter (absent: no limit). ARGV[1]: the
# key's id; ARGV[2]: the counter's lifetime (s). Answers {record or nil, count or nil}.
KEY_AND_COUNT = """
local record = redis.call('HGET', KEYS[1], ARGV[1])
if KEYS[2] == nil then return {record, false} end
local count = redis.call('INCR', KEYS[2])
if count == 1 then redis.call('EXPIRE', KEYS[2], ARGV[2]) end
return {record, count}
"""


class RateLimit:
    def __init__(self, client: redis.asyncio.Redis, keys: Keys, limit: int, window_s: int) -> None:
        self.keys, self.limit, self.window_s = keys, limit, window_s
        self._script = client.register_script(KEY_AND_COUNT)  # by its SHA1, loaded once a server

    async def lookup(self, keyring: str, key_id: str, now: float) -> tuple[Any, int | None]:
        """The record of ``key_id`` in the hash ``keyring`` and, with a limit, this request's
        count in its window (None: no limit, nothing counted); one round trip."""
        counters = [self.keys.api_rate(key_id, int(now // self.window_s))] if self.limit > 0 else []
        found = cast(
            list[Any],
            await self._script(keys=[keyring, *counters], args=[key_id, self.window_s + 1]),
        )
        record, count = found[0], found[1] if len(found) > 1 else None
        return record, int(count) if count is not None else None

    def verdict(self, count: int | None, now: float) -> int | None:
        """None if the request counted ``count`` is allowed (or nothing was counted), else the
        seconds until the window ends (Retry-After)."""
        if self.limit <= 0 or count is None or count <= self.limit:
            return None
        window = int(now // self.window_s)
        return max(1, math.ceil((window + 1) * self.window_s - now))
