"""Every error the API answers, in one shape: RFC 9457 problem details
(``application/problem+json``) naming the field and the value, never a traceback.

``ApiProblem`` is raised by the routes; ``install`` puts handlers on the app for it, for FastAPI's
request validation (its default 422 replaced by this shape), for Starlette's HTTP errors (unknown
route, wrong method) and for anything else (500, the error's type only, logged with its text
redacted)."""

from __future__ import annotations

import json
from typing import Any

import redis
import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from stores.base import StoreUnavailable
from worker.redact import redact_text

MEDIA_TYPE = "application/problem+json"
log = structlog.get_logger("sgr.api")
_TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    410: "Gone",
    413: "Content Too Large",
    422: "Unprocessable Content",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


class FieldProblem(BaseModel):
    """One refused field: where it is, what was sent, what is wrong."""

    field: str = Field(description="Dotted path of the field (`cart.value`, `body`, `code`)")
    value: str | None = Field(description="The value sent, shortened (None: it was missing)")
    message: str
    index: int | None = Field(default=None, description="Position of the event in the list")
    event_id: str | None = None


class Problem(BaseModel):
    """RFC 9457 problem details."""

    type: str = Field(description="`about:blank` or `urn:sgr:problem:<kind>`")
    title: str
    status: int
    detail: str
    kind: str | None = Field(default=None, description="The refusal's kind (`not_yours`, ...)")
    code: str | None = Field(default=None, description="The offer code concerned, canonical")
    errors: list[FieldProblem] | None = None


class ApiProblem(Exception):
    """A refusal the route answers as a problem."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        kind: str | None = None,
        code: str | None = None,
        errors: list[FieldProblem] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status, self.detail, self.kind, self.code = status, detail, kind, code
        self.errors, self.headers = errors, headers

    def body(self) -> dict[str, Any]:
        problem = Problem(
            type=f"urn:sgr:problem:{self.kind}" if self.kind else "about:blank",
            title=_TITLES.get(self.status, "Error"),
            status=self.status,
            detail=self.detail,
            kind=self.kind,
            code=self.code,
            errors=self.errors,
        )
        return problem.model_dump(exclude_none=True)

    def response(self) -> JSONResponse:
        return JSONResponse(self.body(), self.status, self.headers, media_type=MEDIA_TYPE)


def value_text(value: Any) -> str:
    """A refused value as ``errors[].value`` shows it: a string as itself (no quotes), bytes
    decoded, anything else as its JSON text (``-5``, ``2.5``, ``true``, ``null``, ``[1, 2]``,
    ``{"a": 1}``), never Python's repr (``'x'``, ``True``, ``None``)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8", "replace")
    try:
        return json.dumps(value, ensure_ascii=False, default=str)
    except (TypeError, ValueError, RecursionError):  # a key JSON cannot hold, a cycle, depth
        return repr(value)


def short(value: Any, limit: int = 80) -> str:
    """``value_text``, cut at ``limit`` characters (then the length is said)."""
    text = value_text(value)
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} chars)"


def validation_problem(exc: RequestValidationError) -> ApiProblem:
    errors = []
    for err in exc.errors():
        loc = [str(p) for p in err.get("loc", ())]
        where = ".".join(loc[1:]) if len(loc) > 1 else (loc[0] if loc else "body")
        missing = err.get("type") == "missing"
        given = err.get("input")
        value = None if missing else short(given)
        message = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        if isinstance(given, bytes):  # a body FastAPI did not read as JSON
            message = "not a JSON object: send it with Content-Type: application/json"
        errors.append(FieldProblem(field=where, value=value, message=message))
    detail = "; ".join(
        f"{e.field}: {e.message}" + (f" (got {e.value})" if e.value is not None else "")
        for e in errors
    )
    return ApiProblem(422, detail or "invalid request", kind="invalid_request", errors=errors)


def install(app: FastAPI) -> None:
    @app.exception_handler(ApiProblem)
    async def _problem(request: Request, exc: ApiProblem) -> JSONResponse:
        return exc.response()

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return validation_problem(exc).response()

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, str) else _TITLES.get(exc.status_code, "")
        headers = dict(exc.headers) if exc.headers else None
        return ApiProblem(exc.status_code, detail, headers=headers).response()

    @app.exception_handler(StoreUnavailable)
    async def _store(request: Request, exc: StoreUnavailable) -> JSONResponse:
        detail = redact_text(str(exc))[:300]
        return ApiProblem(503, detail, kind="store_unavailable").response()

    @app.exception_handler(redis.RedisError)
    async def _redis(request: Request, exc: redis.RedisError) -> JSONResponse:
        detail = f"Redis is unavailable: {redact_text(str(exc))[:200]}"
        return ApiProblem(503, detail, kind="redis_unavailable").response()

    @app.exception_handler(Exception)
    async def _bug(request: Request, exc: Exception) -> JSONResponse:
        log.error("api_error", error=type(exc).__name__, text=redact_text(str(exc))[:300])
        detail = f"the server failed on this request ({type(exc).__name__}); it is logged"
        return ApiProblem(500, detail, kind="server_error").response()


def responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The problem answers a route documents (OpenAPI), each as ``application/problem+json``."""
    schema = {"schema": {"$ref": "#/components/schemas/Problem"}}
    return {
        status: {"description": _TITLES.get(status, "Error"), "content": {MEDIA_TYPE: schema}}
        for status in statuses
    }
