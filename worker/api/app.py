"""The FastAPI application: routers, problem handlers, metrics, and the OpenAPI document (the
event's schema in its components, every 422 a problem). ``create_app(None)`` makes the document
without a runtime (``sgr api --openapi``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from anyio import to_thread
from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from worker.api import codes, events, health, offers, problems, reports
from worker.api.eventschema import event_schema
from worker.api.metrics import ApiMetrics, MetricsMiddleware
from worker.api.state import ApiState
from worker.runtime import ApiRuntime

TITLE = "SGR Discount Manager API"
VERSION = "1"
DESCRIPTION = (
    "Send cart events, read every event's outcome, read offers, verify and redeem codes. "
    "Every route but /healthz and /metrics needs `Authorization: Bearer <key>` of its scope "
    "(producer: events; checkout: offers and codes; admin: all). Errors are RFC 9457 problem "
    "details naming the field and the value. Details: docs/api.md."
)


def create_app(runtime: ApiRuntime | None, *, floor: bool = False) -> FastAPI:
    metrics = ApiMetrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if runtime is not None:
            to_thread.current_default_thread_limiter().total_tokens = runtime.settings.api_threads
        yield
        if runtime is not None:
            runtime.close()

    app = FastAPI(
        title=TITLE,
        version=VERSION,
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    if runtime is not None:
        app.state.sgr = ApiState.of(runtime, metrics)
    problems.install(app)
    for module in (events, offers, codes, reports, health):
        app.include_router(module.router)
    if floor:
        app.include_router(health.floor)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    app.openapi = lambda: openapi_document(app)  # type: ignore[method-assign]
    return app


def openapi_document(app: FastAPI) -> dict[str, Any]:
    if app.openapi_schema:
        return app.openapi_schema
    doc = get_openapi(
        title=app.title, version=app.version, description=app.description, routes=app.routes
    )
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    event = event_schema("#/components/schemas/{model}")
    schemas.update(event.pop("$defs"))
    schemas["CartEvent"] = event
    schemas["Problem"] = problems.Problem.model_json_schema(
        ref_template="#/components/schemas/{model}"
    )
    schemas.update(schemas["Problem"].pop("$defs", {}))
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    invalid = problems.responses(422)[422]
    for path in doc["paths"].values():
        for operation in path.values():
            answers = operation.get("responses", {})
            if "422" in answers:
                answers["422"] = invalid
    app.openapi_schema = doc
    return doc
