"""The HTTP API over real HTTP: `sgr api` subprocesses (testbench/apiproc.py; two per hot store,
shared by the module's tests) on a real Redis and both hot stores, stock `rq worker` subprocesses turning the events into outcomes, clients in
separate processes racing for one code."""

from __future__ import annotations

import multiprocessing
import re
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from stores.hot import open_hot_store
from testbench.apiproc import ApiServer
from testbench.fleet import Fleet
from testbench.pgproc import fresh_database
from tests.conftest import event, worker_env
from worker.api.apikeys import KeyRing
from worker.domain.codes import new_code
from worker.domain.model import Offer
from worker.keys import Keys
from worker.settings import Settings

pytestmark = pytest.mark.integration


def keyring(client: redis.Redis) -> KeyRing:
    return KeyRing(client, Keys.from_settings(Settings()))


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def api_env(data_dir: Path, redis_url: str, hot_store_url: str, **extra: str) -> dict[str, str]:
    env = worker_env(data_dir, SGR_HOT_STORE_URL=hot_store_url, SGR_REDIS_URL=redis_url)
    return env | {"SGR_API_RATE_LIMIT": "100000"} | extra


def store_offer(
    data_dir: Path, hot_store_url: str, user: str, currency: str = "EUR", pct: float = 6.0
) -> Offer:
    now = datetime.now(UTC)
    code = new_code()
    offer = Offer(
        offer_id=f"o-{code[-9:]}", event_id=f"e-{code[-9:]}", session_id="s1", user_id=user,
        currency=currency, cart_value=120.0, margin=0.4, segment="mid", cap_pct=12.0,
        discount_pct=pct, code=code, expires_at=now + timedelta(hours=48), engine="policy",
        model=None, reasoning={}, message="Hello", guardrail=None,
        created_at=now - timedelta(hours=1),
    )  # fmt: skip
    hot = open_hot_store(hot_store_url, data_dir / "hot.sqlite")
    try:
        hot.insert_offer(offer)
    finally:
        hot.close()
    return offer


def redeemed_at(data_dir: Path, hot_store_url: str, code: str) -> datetime | None:
    hot = open_hot_store(hot_store_url, data_dir / "hot.sqlite")
    try:
        state = hot.code_state(code)
        assert state is not None
        return state.redeemed_at
    finally:
        hot.close()


@dataclass(frozen=True)
class Served:
    """Two `sgr api` processes on one data folder and hot store (one module's, per backend)."""

    first: ApiServer
    second: ApiServer
    data_dir: Path
    hot_store_url: str

    @property
    def url(self) -> str:
        return self.first.url


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def served(
    request: pytest.FixtureRequest,
    redis_url: str,
    cold_db: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Served]:
    data = tmp_path_factory.mktemp(f"api-{request.param}")
    (data / "cold.duckdb").symlink_to(cold_db)
    (data / "history.sqlite").symlink_to(cold_db.with_name("history.sqlite"))
    with ExitStack() as stack:
        url = ""
        if request.param == "postgres":
            url = stack.enter_context(fresh_database(request.getfixturevalue("postgres_url")))
        else:
            open_hot_store("", data / "hot.sqlite").close()  # as `sgr setup-data` leaves it
        env = api_env(data, redis_url, url)
        first = stack.enter_context(ApiServer(env))
        second = stack.enter_context(ApiServer(env))
        yield Served(first, second, data, url)


@pytest.fixture
def api(served: Served, redis_client: redis.Redis) -> Served:
    return served  # redis_client: a flushed Redis for each test


def test_a_shop_sends_an_event_reads_its_outcome_and_redeems_its_code(
    api: Served, redis_client: redis.Redis, redis_url: str
) -> None:
    data_dir, hot_store_url = api.data_dir, api.hot_store_url
    producer, _ = keyring(redis_client).create("producer", "shop backend", datetime.now(UTC))
    checkout, _ = keyring(redis_client).create("checkout", "checkout", datetime.now(UTC))
    now = datetime.now(UTC).replace(microsecond=0)
    abandoned = event(event_id="api-1", user="u000001", session="api-s1", at=now, value=180.0)
    no_offer = event("cart_updated", event_id="api-2", user="u000002", session="api-s2", at=now)
    talk = event(
        "customer_message", event_id="api-3", user="u000003", session="api-s3", at=now,
        message="Is there any discount on my cart?",
    )  # fmt: skip
    with httpx.Client(base_url=api.url, timeout=10) as http:
        sent = http.post("/v1/events", json=[abandoned, no_offer, talk], headers=bearer(producer))
        assert sent.status_code == 202, sent.text
        assert sent.json() == {"accepted": ["api-1", "api-2", "api-3"], "count": 3}
        again = http.post("/v1/events", json=abandoned, headers=bearer(producer))  # twice: once
        assert again.status_code == 202
        unknown = http.get("/v1/events/api-1", headers=bearer(producer))
        assert unknown.status_code == 404  # no worker yet
        assert unknown.headers["content-type"] == "application/problem+json"

        env = worker_env(data_dir, SGR_HOT_STORE_URL=hot_store_url)
        Fleet(1, redis_url, "cart-events", env, burst=True).start().wait(120)

        outcome = http.get("/v1/events/api-1", headers=bearer(producer)).json()
        assert outcome["outcome"] == "offer" and outcome["offer_id"], outcome
        assert outcome["finished_at"] and outcome["occurred_at"]
        other = http.get("/v1/events/api-2", headers=bearer(producer)).json()
        assert other["outcome"] == "no_offer" and other["reason"] and other["offer_id"] is None
        turn = http.get("/v1/events/api-3", headers=bearer(producer)).json()
        assert turn["reply"] and turn["route"] and turn["turn"] == 1, turn  # the turn's reply

        offer = http.get(f"/v1/offers/{outcome['offer_id']}", headers=bearer(checkout)).json()
        assert offer["status"] == "live" and offer["user_id"] == "u000001"
        assert "cap_pct" not in offer and "reasoning" not in offer
        live = http.get("/v1/customers/u000001/offers", headers=bearer(checkout)).json()
        assert [o["offer_id"] for o in live["offers"]] == [offer["offer_id"]]

        code = offer["code"]
        valid = http.post(
            f"/v1/codes/{code.lower()}/verify",
            json={"user_id": "u000001"},
            headers=bearer(checkout),
        )
        assert valid.status_code == 200 and valid.json()["status"] == "valid"
        wrong = {"user_id": "u000001", "order": {"order_id": "ord-1", "currency": "USD"}}
        refused = http.post(f"/v1/codes/{code}/redeem", json=wrong, headers=bearer(checkout))
        assert refused.status_code == 422 and refused.json()["kind"] == "currency_mismatch"
        assert refused.json()["errors"][0] == {
            "field": "order.currency", "value": "USD", "message": "currency_mismatch"
        }  # fmt: skip
        order = {"order_id": "ord-1", "cart_value": 180.0, "currency": "EUR"}
        body = {"user_id": "u000001", "order": order}
        done = http.post(f"/v1/codes/{code}/redeem", json=body, headers=bearer(checkout))
        assert done.status_code == 200, done.text
        answer = done.json()
        assert answer["status"] == "redeemed" and answer["currency"] == "EUR"
        assert answer["discount_amount"] == round(180.0 * answer["discount_pct"] / 100, 2)
        twice = http.post(f"/v1/codes/{code}/redeem", json=body, headers=bearer(checkout))
        assert twice.status_code == 409 and twice.json()["kind"] == "redeemed"
        after = http.get(f"/v1/offers/{outcome['offer_id']}", headers=bearer(checkout)).json()
        assert after["status"] == "redeemed"
        assert http.get("/v1/customers/u000001/offers", headers=bearer(checkout)).json() == {
            "user_id": "u000001", "offers": []
        }  # fmt: skip
    hot = open_hot_store(hot_store_url, data_dir / "hot.sqlite")
    try:
        assert hot.summary()["events"] == 3  # the event sent twice took effect once
    finally:
        hot.close()


def raw(body: str, name: str) -> str:
    """A value's JSON text as the answer's body carries it."""
    found = re.search(rf'"{name}":\s*([^,}}]+)', body)
    assert found, (name, body)
    return found[1]


def test_one_offer_reads_byte_for_byte_alike_on_every_route(
    api: Served, redis_client: redis.Redis
) -> None:
    """A whole percentage and a time, as verify, redeem and both offers routes write them (redeem
    said ``2`` on SQLite where the others said ``2.0``; the offers routes wrote ``Z``)."""
    offer = store_offer(api.data_dir, api.hot_store_url, "u-form", pct=2.0)
    key, _ = keyring(redis_client).create("checkout", "form", datetime.now(UTC))
    with httpx.Client(base_url=api.url, timeout=10, headers=bearer(key)) as http:
        one = http.get(f"/v1/offers/{offer.offer_id}")
        listed = http.get("/v1/customers/u-form/offers")
        valid = http.post(f"/v1/codes/{offer.code}/verify", json={"user_id": "u-form"})
        done = http.post(f"/v1/codes/{offer.code}/redeem", json={"user_id": "u-form"})
    answers = (one, listed, valid, done)
    assert [a.status_code for a in answers] == [200] * 4, [a.text for a in answers]
    pct = {raw(a.text, "discount_pct") for a in answers}
    expires = {raw(a.text, "expires_at") for a in answers}
    assert pct == {"2.0"}, pct
    assert expires == {'"' + offer.expires_at.isoformat(timespec="microseconds") + '"'}, expires
    assert re.fullmatch(r'"[0-9T:.-]+\+00:00"', raw(done.text, "redeemed_at"))


def test_a_refused_value_is_itself_not_its_repr(api: Served, redis_client: redis.Redis) -> None:
    producer, _ = keyring(redis_client).create("producer", "", datetime.now(UTC))
    typo = event("cart_abandonned", event_id="api-typo")
    negative = event(event_id="api-neg", cart={"currency": "EUR", "value": -5, "margin": 0.2})
    with httpx.Client(base_url=api.url, timeout=10, headers=bearer(producer)) as http:
        got = http.post("/v1/events", json=[typo, negative])
    assert got.status_code == 422, got.text
    values = {(e["event_id"], e["field"]): e.get("value") for e in got.json()["errors"]}
    assert values[("api-typo", "type")] == "cart_abandonned"  # not "'cart_abandonned'"
    assert values[("api-neg", "cart.value")] == "-5"
    assert "(got cart_abandonned)" in got.json()["detail"]


def _redeem(url: str, key: str, code: str, user: str, start: Any, out: Any) -> None:
    start.wait()
    try:
        got = httpx.post(
            f"{url}/v1/codes/{code}/redeem", json={"user_id": user}, headers=bearer(key), timeout=30
        )
        out.put((got.status_code, got.json().get("kind") or got.json().get("status")))
    except Exception as exc:  # the test names it
        out.put((0, repr(exc)))


def test_twenty_racing_redeems_from_separate_processes_give_one_success(
    api: Served, redis_client: redis.Redis
) -> None:
    offer = store_offer(api.data_dir, api.hot_store_url, "u-race")
    key, _ = keyring(redis_client).create("checkout", "race", datetime.now(UTC))
    ctx = multiprocessing.get_context("fork")
    start, out = ctx.Barrier(20), ctx.Queue()
    servers = (api.first, api.second)  # two processes, one store
    clients = [
        ctx.Process(
            target=_redeem, args=(servers[n % 2].url, key, offer.code, "u-race", start, out)
        )
        for n in range(20)
    ]
    for client in clients:
        client.start()
    answers = [out.get(timeout=60) for _ in clients]
    for client in clients:
        client.join(10)
    assert sorted(answers) == [(200, "redeemed")] + [(409, "redeemed")] * 19
    assert redeemed_at(api.data_dir, api.hot_store_url, offer.code) is not None


def test_an_idempotency_key_gives_the_same_answer_and_refuses_another_body(
    api: Served, redis_client: redis.Redis
) -> None:
    data_dir, hot_store_url = api.data_dir, api.hot_store_url
    offer = store_offer(data_dir, hot_store_url, "u-idem")
    key, _ = keyring(redis_client).create("checkout", "idem", datetime.now(UTC))
    url = f"{api.url}/v1/codes/{offer.code}/redeem"
    body = {"user_id": "u-idem", "order": {"order_id": "ord-9", "currency": "EUR"}}
    headers = bearer(key) | {"Idempotency-Key": "checkout-ord-9"}
    first = httpx.post(url, json=body, headers=headers)
    second = httpx.post(url, json=body, headers=headers)
    assert first.status_code == second.status_code == 200
    assert first.json() == second.json()
    assert second.headers.get("idempotent-replayed") == "true"
    other = httpx.post(url, json=body | {"user_id": "u-other"}, headers=headers)
    assert other.status_code == 409 and other.json()["kind"] == "idempotency_mismatch"
    fresh = httpx.post(url, json=body, headers=bearer(key) | {"Idempotency-Key": "another"})
    assert fresh.status_code == 409 and fresh.json()["kind"] == "redeemed"  # single use
    # one discount per order: another code for the same order is refused
    again = store_offer(data_dir, hot_store_url, "u-idem2")
    taken = httpx.post(
        f"{api.url}/v1/codes/{again.code}/redeem",
        json={"user_id": "u-idem2", "order": {"order_id": "ord-9"}},
        headers=bearer(key),
    )
    assert taken.status_code == 409 and taken.json()["kind"] == "order_used"
    assert redeemed_at(data_dir, hot_store_url, again.code) is None


def test_keys_scopes_and_the_rate_limit(
    data_dir: Path, redis_url: str, redis_client: redis.Redis
) -> None:
    offer = store_offer(data_dir, "", "u-key")
    ring = keyring(redis_client)
    now = datetime.now(UTC)
    producer, _ = ring.create("producer", "", now)
    checkout, record = ring.create("checkout", "", now)
    env = api_env(data_dir, redis_url, "", SGR_API_RATE_LIMIT="5", SGR_API_RATE_WINDOW_S="60")
    redeem = f"/v1/codes/{offer.code}/redeem"
    body = {"user_id": "u-key"}
    with ApiServer(env) as api, httpx.Client(base_url=api.url) as http:
        assert http.post(redeem, json=body).status_code == 401
        assert http.post(redeem, json=body, headers=bearer("sgrk_nope")).status_code == 401
        forged = checkout[:-4] + "AAAA"
        assert http.post(redeem, json=body, headers=bearer(forged)).status_code == 401
        wrong = http.post(redeem, json=body, headers=bearer(producer))
        assert wrong.status_code == 403 and wrong.json()["kind"] == "wrong_scope"
        events = http.post("/v1/events", json=event(), headers=bearer(checkout))
        assert events.status_code == 403
        assert redis_client.llen("rq:queue:cart-events") == 0  # the queue was not touched
        assert redeemed_at(data_dir, "", offer.code) is None  # nor the store
        # every request naming the key's id counts: the forged one, the 403, then 3 of 5 allowed
        for _ in range(3):
            got = http.get("/v1/customers/u-key/offers", headers=bearer(checkout))
            assert got.status_code == 200
        limited = http.get("/v1/customers/u-key/offers", headers=bearer(checkout))
        assert limited.status_code == 429
        assert 1 <= int(limited.headers["retry-after"]) <= 60
        assert ring.revoke(record.key_id, datetime.now(UTC))
        revoked = http.get("/v1/customers/u-key/offers", headers=bearer(checkout))
        assert revoked.status_code == 401
        assert checkout not in redis_client.hget(ring.hash, record.key_id).decode()  # type: ignore[union-attr]
        metrics = http.get("/metrics").text
        assert 'route="/v1/codes/{code}/redeem",status="401"' in metrics
        assert offer.code not in metrics


def test_a_redis_that_is_down_is_a_503_problem_not_a_traceback(data_dir: Path) -> None:
    from testbench.redisproc import free_port

    nowhere = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    with ApiServer(api_env(data_dir, nowhere, "")) as api:
        got = httpx.post(
            f"{api.url}/v1/codes/SGR-2345-6789-ABCD/redeem",
            json={"user_id": "u1"},
            headers=bearer("sgrk_0123456789ab_" + "x" * 43),
        )
        assert got.status_code == 503, got.text
        assert got.headers["content-type"] == "application/problem+json"
        problem = got.json()
        assert problem["kind"] == "redis_unavailable" and "Traceback" not in got.text
        assert httpx.get(f"{api.url}/healthz").status_code == 200  # liveness needs no Redis


def test_the_lift_report_over_http_is_the_cli_s_and_needs_an_admin_key(
    data_dir: Path, redis_url: str, redis_client: redis.Redis
) -> None:
    """GET /v1/reports/lift: the running experiment's report (the same as `sgr report lift
    --json`), for an admin key only; a `since` that is no time is a 422 naming it."""
    ring = keyring(redis_client)
    now = datetime.now(UTC)
    admin, _ = ring.create("admin", "", now)
    checkout, _ = ring.create("checkout", "", now)
    env = api_env(
        data_dir, redis_url, "", SGR_HOLDOUT_PCT="20", SGR_EXPERIMENT_SALT="api-test-salt"
    )
    with ApiServer(env) as api, httpx.Client(base_url=api.url) as http:
        assert http.get("/v1/reports/lift", headers=bearer(checkout)).status_code == 403
        got = http.get("/v1/reports/lift", headers=bearer(admin))
        assert got.status_code == 200, got.text
        body = got.json()
        assert body["holdout_share"] == 0.2 and body["experiment"]
        assert set(body["groups"]) == {"treatment", "holdout"}
        assert {"lift", "ci_low", "ci_high", "srm_p", "segments", "verdict"} <= set(body)
        bad = http.get("/v1/reports/lift", params={"since": "yesterday"}, headers=bearer(admin))
        assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "since"


def test_a_delayed_decision_reads_scheduled_with_its_due_time(
    api: Served, redis_client: redis.Redis
) -> None:
    """An abandonment whose decision waits (SGR_OFFER_DELAY_MINUTES) is `scheduled` with its
    `due_at` over HTTP, as in `sgr status --event` (docs/recovery.md)."""
    producer, _ = keyring(redis_client).create("producer", "", datetime.now(UTC))
    now = datetime.now(UTC).replace(microsecond=0)
    due = now + timedelta(hours=4)
    hot = open_hot_store(api.hot_store_url, api.data_dir / "hot.sqlite")
    try:
        with hot.transaction():
            assert hot.schedule_decision(
                "api-later", "s-later", "u000005", "{}", now, due, None, now
            )
    finally:
        hot.close()
    with httpx.Client(base_url=api.url, timeout=10) as http:
        got = http.get("/v1/events/api-later", headers=bearer(producer))
    assert got.status_code == 200, got.text
    body = got.json()
    assert body["outcome"] == "scheduled" and body["user_id"] == "u000005"
    assert datetime.fromisoformat(body["due_at"]) == due
    assert body["due_at"] == due.isoformat(timespec="microseconds")  # the streams' form, not Z
