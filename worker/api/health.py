"""``/healthz`` (the process answers: no store, no Redis, for a liveness probe), ``/metrics``
(the API's Prometheus figures) and, for ``sgr bench`` only (``create_app(floor=True)``), a bare
endpoint: the same server, framework and body handling with none of the work (the floor)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from worker.api.schemas import Health, RedeemIn
from worker.api.state import ApiState, state

router = APIRouter(tags=["operations"])
floor = APIRouter()


@router.get("/healthz", response_model=Health, summary="Liveness: the process answers")
async def healthz() -> Health:
    return Health(status="ok")


@router.get(
    "/metrics",
    summary="Prometheus figures: requests by route and status, latency",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}}}},
)
def metrics(st: Annotated[ApiState, Depends(state)]) -> Response:
    return Response(generate_latest(st.metrics.registry), media_type=CONTENT_TYPE_LATEST)


@floor.post("/bench/floor/{code}", include_in_schema=False)
def bare(code: str, given: RedeemIn) -> dict[str, str]:
    """What every request costs before any work: routing, body parsing, a thread, JSON."""
    return {"status": "floor", "code": code, "user_id": given.user_id}
