"""schemathesis against a live `sgr api` (a real Redis, a SQLite hot store): every route of the
committed OpenAPI document, on both hot stores, with an admin key, then with a bad one; no 5xx, no status, content type or
body outside the document. Bounded: a few examples per route (seconds, not minutes)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from stores.hot import open_hot_store
from testbench.apiproc import ApiServer
from testbench.pgproc import fresh_database
from worker.api.apikeys import KeyRing
from worker.keys import Keys
from worker.settings import Settings

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
KEY: dict[str, str] = {}


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def live_api(
    request: pytest.FixtureRequest, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ApiServer]:
    client = redis.Redis.from_url(redis_url)
    KEY["admin"], _ = KeyRing(client, Keys.from_settings(Settings())).create(
        "admin", "schemathesis", datetime.now(UTC)
    )
    client.close()
    data = tmp_path_factory.mktemp("api-fuzz")
    with ExitStack() as stack:
        store = ""
        if request.param == "postgres":
            store = stack.enter_context(fresh_database(request.getfixturevalue("postgres_url")))
        else:
            open_hot_store("", data / "hot.sqlite").close()  # as `sgr setup-data` leaves it
        yield stack.enter_context(ApiServer(_env(redis_url, data, store)))


def _env(redis_url: str, data: Path, store: str) -> dict[str, str]:
    return {
        "SGR_REDIS_URL": redis_url,
        "SGR_DATA_DIR": str(data),
        "SGR_HOT_STORE_URL": store,
        "SGR_API_RATE_LIMIT": "0",
        "SGR_LOG_LEVEL": "WARNING",
        "SGR_QUEUE": "fuzz-events",  # nothing drains it
    }


@pytest.fixture(scope="module")
def api_schema(live_api: ApiServer) -> Any:
    return schemathesis.openapi.from_url(f"{live_api.url}/openapi.json")


def test_the_served_document_is_the_committed_one(live_api: ApiServer) -> None:
    served = httpx.get(f"{live_api.url}/openapi.json").json()
    assert served == json.loads((ROOT / "docs/openapi.json").read_text()), "run `make docs`"


def test_every_route_answers_within_its_contract(api_schema: Any) -> None:
    """Each operation's cases drawn from its schema (schemathesis' strategies under hypothesis;
    its pytest plugin's parametrize does not run under pytest 9), with a key and with a bad one."""
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) == 9  # every route of the document
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=12,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        def route(case: Any) -> None:
            admin = {"Authorization": f"Bearer {KEY['admin']}"}
            case.call_and_validate(headers=admin, checks=CHECKS)
            bad = {"Authorization": "Bearer sgrk_000000000000_x"}
            case.call_and_validate(headers=bad, checks=CHECKS)

        route()


def test_a_body_too_large_is_refused_before_it_is_read(live_api: ApiServer) -> None:
    headers = {"Authorization": f"Bearer {KEY['admin']}", "Content-Type": "application/json"}
    big = b"[" + b"1," * (4 * 1024 * 1024) + b"1]"  # 8 MiB and more
    got = httpx.post(f"{live_api.url}/v1/events", content=big, headers=headers, timeout=30)
    assert got.status_code == 413 and got.json()["kind"] == "too_large"
