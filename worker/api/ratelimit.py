"""A per-key rate limit in Redis: fixed windows of ``SGR_API_RATE_WINDOW_S`` seconds, at most
``SGR_API_RATE_LIMIT`` requests each, counted by one INCR (and its EXPIRE) per request, so every
``sgr api`` process of a fleet counts against the same number."""

from __future__ import annotations

import math
from typing import Any

import redis.asyncio

from worker.keys import Keys


class RateLimit:
    def __init__(self, client: redis.asyncio.Redis, keys: Keys, limit: int, window_s: int) -> None:
        self.client, self.keys, self.limit, self.window_s = client, keys, limit, window_s

    async def hit(self, key_id: str, now: float) -> int | None:
        """Count one request of ``key_id`` at ``now`` (Unix time): None if allowed, else the
        seconds until the window ends (Retry-After). One round trip (INCR and EXPIRE)."""
        if self.limit <= 0:
            return None
        window = int(now // self.window_s)
        counter = self.keys.api_rate(key_id, window)
        pipe = self.client.pipeline(transaction=False)
        pipe.incr(counter)
        pipe.expire(counter, self.window_s + 1)
        count: Any = (await pipe.execute())[0]
        if int(count) <= self.limit:
            return None
        return max(1, math.ceil((window + 1) * self.window_s - now))
