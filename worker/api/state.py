"""What every route reaches through the request: the process's ``ApiRuntime`` (settings, Redis,
queue, hot store per thread), its API keys, its rate limit and its metrics."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request

from worker.api.apikeys import KeyRing
from worker.api.metrics import ApiMetrics
from worker.api.ratelimit import RateLimit
from worker.runtime import ApiRuntime


@dataclass(frozen=True)
class ApiState:
    runtime: ApiRuntime
    ring: KeyRing
    limit: RateLimit
    metrics: ApiMetrics

    @classmethod
    def of(cls, runtime: ApiRuntime, metrics: ApiMetrics) -> ApiState:
        s = runtime.settings
        return cls(
            runtime,
            KeyRing(runtime.client, runtime.keys),
            RateLimit(runtime.aclient, runtime.keys, s.api_rate_limit, s.api_rate_window_s),
            metrics,
        )


def state_of(request: Request) -> ApiState:
    found: ApiState = request.app.state.sgr
    return found


async def state(request: Request) -> ApiState:
    """The dependency (async: no thread taken for it)."""
    return state_of(request)
