"""``POST /v1/events`` (one event or a list, validated by the contract, enqueued as
``sgr produce`` and the bridge enqueue: ``producers.enqueue.enqueue_events``) and
``GET /v1/events/{event_id}`` (the outcome the workers recorded)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from fastapi.concurrency import run_in_threadpool

from producers.enqueue import enqueue_events
from worker.api.auth import Producer
from worker.api.problems import ApiProblem, FieldProblem, responses, short
from worker.api.schemas import EventOutcome, EventsAccepted
from worker.api.state import ApiState
from worker.domain.events import InvalidEvent, parse_event
from worker.redact import redact_text

router = APIRouter(tags=["events"])
MAX_BODY_BYTES = 8 * 1024 * 1024
# The request body's schema: the event's (docs/schemas/event.schema.json) or a list of them.
EVENTS_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "oneOf": [
                        {"$ref": "#/components/schemas/CartEvent"},
                        {
                            "type": "array",
                            "items": {"$ref": "#/components/schemas/CartEvent"},
                            "minItems": 1,
                        },
                    ]
                }
            }
        },
    }
}
EventId = Annotated[str, Path(min_length=1, max_length=128)]


def field_problems(index: int, exc: InvalidEvent) -> list[FieldProblem]:
    """The contract's refused fields, one FieldProblem each, the value as sent (``short``: a
    string as itself, a number as its JSON text), not the repr its ``(got ...)`` line shows."""
    return [
        FieldProblem(
            field=f.field,
            value=None if f.sent is None else short(f.sent[0]),
            message=f.message,
            index=index,
            event_id=exc.event_id,
        )
        for f in exc.fields
    ]


def _enqueue(st: ApiState, events: list[Any]) -> EventsAccepted:
    s = st.runtime.settings
    now, limits = datetime.now(UTC), s.time_limits()
    refused: list[FieldProblem] = []
    for index, payload in enumerate(events):
        try:
            parse_event(payload, now, limits)
        except InvalidEvent as exc:
            refused.extend(field_problems(index, exc))
    if refused:
        shown = "; ".join(
            f"[{e.index}] {e.field}: {e.message}"
            + (f" (got {e.value})" if e.value is not None else "")
            for e in refused[:5]
        )
        raise ApiProblem(
            422,
            f"{len({e.index for e in refused})} of {len(events)} events refused, none enqueued "
            f"(fix them and send again; accepted events take effect once): {shown}",
            kind="invalid_event",
            errors=refused,
        )
    report = enqueue_events(
        st.runtime.queue,
        events,
        validate=False,  # validated above, all or none
        **s.job_options(),
    )
    return EventsAccepted(accepted=report.accepted, count=len(report.accepted))


async def _body(request: Request) -> bytes:
    """The body, read no further than MAX_BODY_BYTES (413 beyond, said before it is all in)."""
    too_big = ApiProblem(413, f"the body is larger than {MAX_BODY_BYTES} bytes", kind="too_large")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise too_big
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise too_big
        chunks.append(chunk)
    return b"".join(chunks)


@router.post(
    "/v1/events",
    status_code=202,
    response_model=EventsAccepted,
    openapi_extra=EVENTS_BODY,
    responses=responses(401, 403, 413, 422, 429, 503),
    summary="Send one event or a list (all are enqueued, or none)",
)
async def post_events(request: Request, caller: Producer) -> EventsAccepted:
    st, raw = caller.st, await _body(request)
    try:
        payload = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        problem = FieldProblem(field="body", value=short(raw[:80]), message=f"not JSON: {exc}")
        raise ApiProblem(
            422, f"the body is not JSON: {exc}", kind="invalid_request", errors=[problem]
        ) from None
    events = payload if isinstance(payload, list) else [payload]
    limit = st.runtime.settings.api_max_events
    if not events or len(events) > limit:
        raise ApiProblem(
            422,
            f"send 1 to {limit} events (SGR_API_MAX_EVENTS), got {len(events)}",
            kind="invalid_request",
            errors=[FieldProblem(field="body", value=f"{len(events)} events", message="size")],
        )
    return await run_in_threadpool(_enqueue, st, events)


@router.get(
    "/v1/events/{event_id}",
    response_model=EventOutcome,
    responses=responses(401, 403, 404, 422, 429, 503),
    summary="The outcome recorded for an event (404 while none is)",
)
def get_event(event_id: EventId, caller: Producer) -> EventOutcome:
    with caller.st.runtime.stores.use() as hot:
        record = hot.event_record(event_id)
    if record is None:
        raise ApiProblem(
            404,
            f"no outcome recorded for event {short(event_id, 60)} (yet: queued or being handled, "
            "or never sent)",
            kind="unknown_event",
            errors=[FieldProblem(field="event_id", value=short(event_id), message="unknown")],
        )
    error = redact_text(record.error) if record.error else None
    return EventOutcome(**(vars(record) | {"error": error}))
