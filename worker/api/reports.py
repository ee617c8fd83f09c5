"""``GET /v1/reports/lift``: the holdout experiment's lift, as ``sgr report lift --json`` prints
it (worker/liftreport.py; docs/lift.md)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query

from worker.api.auth import Admin
from worker.api.problems import ApiProblem, FieldProblem, responses, short
from worker.liftreport import lift_report

router = APIRouter(tags=["reports"])


def _since(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise ApiProblem(
            422,
            "since: an ISO-8601 time with a zone, e.g. 2026-12-01T00:00:00Z",
            kind="invalid_query",
            errors=[
                FieldProblem(field="since", value=short(text), message="not a time with a zone")
            ],
        )
    return moment


@router.get(
    "/v1/reports/lift",
    responses=responses(401, 403, 422, 429, 503),
    summary="The holdout experiment's lift: groups, the lift with its 95 % interval, segments",
)
def lift(
    caller: Admin,
    since: Annotated[str | None, Query(max_length=64)] = None,
) -> dict[str, Any]:
    moment, st = _since(since), caller.st
    with st.runtime.stores.use() as hot:
        return lift_report(hot, st.runtime.settings.experiment(), moment)
