"""``sgr api``: uvicorn serving the app on one process (its threads: ``SGR_API_THREADS``). Run
more processes (or pods) behind a load balancer to scale: the rate limit and the redemptions are
shared through Redis and the hot store. No access log: paths carry codes; ``/metrics`` counts by
route template instead."""

from __future__ import annotations

import json
from typing import Any

import uvicorn

from worker.api.app import create_app
from worker.runtime import build_api_runtime
from worker.settings import Settings


def openapi_text() -> str:
    """The OpenAPI document as committed (docs/openapi.json)."""
    return json.dumps(create_app(None).openapi(), indent=2, sort_keys=True) + "\n"


def serve(settings: Settings, host: str, port: int, *, floor: bool = False) -> None:
    runtime = build_api_runtime(settings)
    app = create_app(runtime, floor=floor)
    config: dict[str, Any] = {
        "host": host,
        "port": port,
        "access_log": False,
        "log_level": settings.log_level.lower(),
        "server_header": False,
        "timeout_graceful_shutdown": 10,
    }
    uvicorn.run(app, **config)
