"""``POST /v1/codes/{code}/verify`` and ``POST /v1/codes/{code}/redeem``: the answers of
``worker/redemption.py`` (``sgr codes`` gives the same), a refusal as a problem whose ``kind`` is
the refusal's; a redemption under an ``Idempotency-Key`` answered once (``idempotency.py``)."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Body, Header, Path
from fastapi.responses import JSONResponse

from stores.base import HotStore
from worker.api.auth import Checkout
from worker.api.idempotency import check_key, once, request_hash
from worker.api.problems import MEDIA_TYPE, ApiProblem, FieldProblem, responses, short
from worker.api.schemas import CodeOut, RedeemIn, VerifyIn
from worker.api.state import ApiState
from worker.domain.codes import InvalidCode
from worker.redemption import Order, canonical, redeem_code, verify_code

router = APIRouter(tags=["codes"])
STATUS = {
    "malformed": 422,
    "unknown": 404,
    "redeemed": 409,
    "expired": 410,
    "voided": 410,
    "not_yours": 403,
    "currency_mismatch": 422,
    "order_used": 409,
}
CodePath = Annotated[str, Path(min_length=1, max_length=64, description="SGR-XXXX-XXXX-XXXX")]
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        description="The same key with the same request: the same answer; another request: 409",
    ),
]
DOCUMENTED = responses(401, 403, 404, 409, 410, 422, 429, 503)


def refusal(exc: InvalidCode, code: str, given: VerifyIn | RedeemIn) -> tuple[int, dict[str, Any]]:
    field, value = {
        "malformed": ("code", code),
        "not_yours": ("user_id", given.user_id),
        "currency_mismatch": ("order.currency", given.order.currency if given.order else None),
        "order_used": ("order.order_id", given.order.order_id if given.order else None),
    }.get(exc.kind, ("code", code))
    problem = ApiProblem(
        STATUS[exc.kind],
        str(exc),
        kind=exc.kind,
        code=None if exc.kind == "malformed" else code,
        errors=[
            FieldProblem(
                field=field, value=None if value is None else short(value), message=exc.kind
            )
        ],
    )
    return problem.status, problem.body()


def answer(
    action: str, hot: HotStore, code: str, given: VerifyIn | RedeemIn, st: ApiState
) -> tuple[int, dict[str, Any]]:
    order = Order(**given.order.model_dump()) if given.order is not None else None
    now = st.runtime.clock()
    try:
        if action == "redeem":
            got = redeem_code(hot, code, given.user_id, now, order, own_transaction=False)
        else:
            got = verify_code(hot, code, given.user_id, now, order)
    except InvalidCode as exc:
        return refusal(exc, code, given)
    return 200, got.as_json()


def reply(status: int, body: dict[str, Any], replayed: bool = False) -> JSONResponse:
    headers = {"Idempotent-Replayed": "true"} if replayed else None
    media = MEDIA_TYPE if status >= 400 else "application/json"
    return JSONResponse(body, status, headers, media_type=media)


def _canonical(code: str, given: VerifyIn | RedeemIn) -> str:
    try:
        return canonical(code)
    except InvalidCode as exc:
        status, body = refusal(exc, code, given)
        raise ApiProblem(
            status, body["detail"], kind="malformed", errors=[FieldProblem(**body["errors"][0])]
        ) from None


@router.post(
    "/v1/codes/{code}/verify",
    response_model=CodeOut,
    responses=DOCUMENTED,
    summary="Whether a code may be redeemed now (by this customer, for this order)",
)
def verify(
    code: CodePath,
    caller: Checkout,
    given: Annotated[VerifyIn | None, Body()] = None,
) -> JSONResponse:
    given, st = given or VerifyIn(), caller.st
    text = _canonical(code, given)
    with st.runtime.stores.use() as hot:
        return reply(*answer("verify", hot, text, given, st))


@router.post(
    "/v1/codes/{code}/redeem",
    response_model=CodeOut,
    responses=DOCUMENTED,
    summary="Redeem a code once, for its customer (single use across every process and host)",
)
def redeem(
    code: CodePath,
    given: RedeemIn,
    caller: Checkout,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    text, st = _canonical(code, given), caller.st
    with st.runtime.stores.use() as hot:
        return _redeem(hot, text, given, caller.key.key_id, idempotency_key, st)


def _redeem(
    hot: HotStore,
    text: str,
    given: RedeemIn,
    key_id: str,
    idempotency_key: str | None,
    st: ApiState,
) -> JSONResponse:
    if idempotency_key is None:
        if given.order is not None and given.order.order_id is not None:
            with hot.transaction():  # the order's lock and the one UPDATE
                return reply(*answer("redeem", hot, text, given, st))
        return reply(*answer("redeem", hot, text, given, st))
    fingerprint = request_hash("redeem", text, given.model_dump(mode="json"))
    retention = timedelta(hours=st.runtime.settings.api_idempotency_hours)
    status, body, replayed = once(
        hot,
        key_id,
        check_key(idempotency_key),
        fingerprint,
        st.runtime.clock(),
        retention,
        lambda: answer("redeem", hot, text, given, st),
    )
    return reply(status, body, replayed)
