"""A per-key rate limit in Redis: fixed windows of ``SGR_API_RATE_WINDOW_S`` seconds, at most
``SGR_API_RATE_LIMIT`` requests each, counted by one INCR (and its EXPIRE) per request, so every
``sgr api`` process of a fleet counts against the same number. The count rides in the same
pipeline as the key's lookup (``auth.py``): one round trip per request."""

from __future__ import annotations

import math
from typing import Any

import redis.asyncio
import redis.asyncio.client

from worker.keys import Keys


class RateLimit:
    def __init__(self, keys: Keys, limit: int, window_s: int) -> None:
        self.keys, self.limit, self.window_s = keys, limit, window_s

    def count(self, pipe: redis.asyncio.client.Pipeline, key_id: str, now: float) -> bool:
        """Queue one request of ``key_id`` at ``now`` (Unix time) on ``pipe`` (INCR and its
        EXPIRE); False if there is no limit (nothing queued)."""
        if self.limit <= 0:
            return False
        counter = self.keys.api_rate(key_id, int(now // self.window_s))
        pipe.incr(counter)
        pipe.expire(counter, self.window_s + 1)
        return True

    def verdict(self, count: Any, now: float) -> int | None:
        """None if the request counted ``count`` is allowed, else the seconds until the window
        ends (Retry-After)."""
        if self.limit <= 0 or int(count) <= self.limit:
            return None
        window = int(now // self.window_s)
        return max(1, math.ceil((window + 1) * self.window_s - now))
