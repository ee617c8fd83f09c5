"""Each route's scope (``Authorization: Bearer <key>``): no key or a key that is not one of ours
answers 401, a key of another scope 403, a key over its rate limit 429 with ``Retry-After``; all
of it before the route runs, so a refused request never reaches the hot store or the queue."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from worker.api.apikeys import ApiKey, key_id
from worker.api.problems import ApiProblem
from worker.api.state import ApiState, state_of

bearer = HTTPBearer(
    auto_error=False,
    scheme_name="apiKey",
    description="An API key made by `sgr api-key create --scope producer|checkout|admin`",
)
CHALLENGE = {"WWW-Authenticate": 'Bearer realm="sgr"'}


@dataclass(frozen=True)
class Caller:
    """Who is calling (their key's record) and the process's state: what a route gets from its
    one dependency (a second one for the state would cost every request tens of microseconds)."""

    key: ApiKey
    st: ApiState


def require(scope: str) -> Callable[..., Awaitable[Caller]]:
    """A dependency that lets through only a live key of ``scope`` (or admin) within its limit
    (async, on the async Redis client: no thread is taken before the route's own; one round trip
    that reads the key's record and counts the request, so a request with a well-formed but wrong
    key is counted against that id too)."""

    async def check(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)],
    ) -> Caller:
        if credentials is None:
            raise ApiProblem(
                401, "no API key: send Authorization: Bearer <key>", kind="no_key",
                headers=CHALLENGE,
            )  # fmt: skip
        st = state_of(request)
        presented, now = credentials.credentials, time.time()
        found = key_id(presented)
        key, retry = None, None
        if found is not None:  # one round trip: the key's record and this request's count
            record, count = await st.limit.lookup(st.ring.hash, found, now)
            key = st.ring.verify(presented, record)
            retry = st.limit.verdict(count, now)
        if key is None:  # never says which part was wrong, never echoes the key
            raise ApiProblem(
                401, "the API key is unknown or revoked", kind="bad_key", headers=CHALLENGE
            )
        if not key.allows(scope):
            raise ApiProblem(
                403,
                f"API key {key.key_id} has scope {key.scope!r}; this route needs {scope!r}",
                kind="wrong_scope",
            )
        if retry is not None:
            raise ApiProblem(
                429,
                f"API key {key.key_id} made more than {st.limit.limit} requests in "
                f"{st.limit.window_s} s; retry in {retry} s",
                kind="rate_limited",
                headers={"Retry-After": str(retry)},
            )
        return Caller(key, st)

    return check


Producer = Annotated[Caller, Depends(require("producer"))]
Checkout = Annotated[Caller, Depends(require("checkout"))]
Admin = Annotated[Caller, Depends(require("admin"))]
