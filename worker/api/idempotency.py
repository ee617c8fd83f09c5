"""``Idempotency-Key`` (Stripe's convention) for redemptions: the first request under a key is
run and its answer kept in the hot store (``api_idempotency``, migration 0005); the same key with
the same request gets that answer again, with another request 409. Keys are per API key, kept for
``SGR_API_IDEMPOTENCY_HOURS`` (one request in a thousand purges those older, by an index).

The claim, the redemption and the kept answer are one transaction: a second request under the same
key waits for the first one's commit (PostgreSQL: the primary key; SQLite: the write lock) and then
reads its answer; a request that fails (503, a bug) keeps nothing, so its retry runs afresh."""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from stores.base import HotStore
from worker.api.problems import ApiProblem, short

MAX_KEY_CHARS = 255
PURGE_CHANCE = 0.001  # one idempotent request in a thousand also purges the expired answers


def request_hash(route: str, code: str, body: Any) -> str:
    """The request as compared under one key: the route, the code and the body's JSON."""
    text = json.dumps([route, code, body], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def check_key(idem_key: str) -> str:
    if not idem_key or len(idem_key) > MAX_KEY_CHARS or not idem_key.isprintable():
        raise ApiProblem(
            422,
            f"Idempotency-Key must be 1 to {MAX_KEY_CHARS} printable characters "
            f"(got {short(idem_key, 40)})",
            kind="invalid_request",
        )
    return idem_key


def once(
    hot: HotStore,
    key_id: str,
    idem_key: str,
    fingerprint: str,
    now: datetime,
    retention: timedelta,
    run: Callable[[], tuple[int, dict[str, Any]]],
) -> tuple[int, dict[str, Any], bool]:
    """The answer ``(status, body, replayed)`` of the request under ``idem_key``: ``run()``'s (in
    the claim's transaction) for the first, the kept one for a repeat; ApiProblem 409 for another
    request under the same key."""
    if random.random() < PURGE_CHANCE:  # the answers past their retention, now and then
        hot.purge_idempotency(now - retention)
    with hot.transaction():
        hot.forget_idempotency(key_id, idem_key, now - retention)
        if hot.claim_idempotency(key_id, idem_key, fingerprint, now):
            status, body = run()
            hot.finish_idempotency(key_id, idem_key, status, json.dumps(body))
            return status, body, False
        kept = hot.stored_answer(key_id, idem_key)
    if kept is None:  # forgotten between the two statements: cannot be under the write lock
        raise ApiProblem(409, "the Idempotency-Key is in use; retry", kind="idempotency_busy")
    if kept.request_hash != fingerprint:
        raise ApiProblem(
            409,
            f"Idempotency-Key {short(idem_key, 40)} was used at {kept.created_at.isoformat()} "
            "for another request: use a new key for a new request",
            kind="idempotency_mismatch",
        )
    return kept.status, json.loads(kept.body), True
