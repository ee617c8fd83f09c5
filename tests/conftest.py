"""Shared fixtures: a real redis-server (own process on a free port unless SGR_TEST_REDIS_URL is
given), a real PostgreSQL (SGR_TEST_POSTGRES_URL, else 127.0.0.1:5432 if it answers, else one of
our own: testbench/pgproc.py) with a fresh database per test, data folders with real SQLite and
DuckDB files, and pipeline deps on them. ``hot_store_url`` runs a test on both hot stores."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import fakeredis
import pytest
import redis
import structlog

from producers.synthetic import customers
from stores.cold import write_history
from stores.history import HistorySnapshot
from stores.hot import open_hot_store
from stores.sync import sync_snapshot
from testbench.pgproc import fresh_database, postgres_server
from testbench.redisproc import RedisServer
from worker.deadletter import DeadLetters
from worker.deps import Deps
from worker.engines.base import Engine
from worker.engines.policy import PolicyEngine
from worker.keys import Keys
from worker.outbox import Outbox
from worker.publish import Publisher
from worker.runtime import Runtime
from worker.settings import Settings

# Decisions at once unless a test asks for a delay (SGR_OFFER_DELAY_MINUTES defaults to 240 for a
# shop; tests of the delay set it themselves): in-process settings and worker subprocesses alike.
os.environ.setdefault("SGR_OFFER_DELAY_MINUTES", "0")


@pytest.fixture(autouse=True)
def own_logging() -> Iterator[None]:
    """A CLI command run in-process configures structlog for its process (``sgr eval`` at
    CRITICAL, its stderr the test's capture): put the previous set-up back after every test, so
    that no test's logs depend on which tests ran before it."""
    saved = structlog.get_config()
    yield
    structlog.configure(**saved)


SECRET = "test-secret-0123456789abcdef"
# A recent whole hour: events dated NOW pass the contract's age and skew limits on any day the
# suite runs (worker subprocesses use the real clock).
NOW = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    given = os.environ.get("SGR_TEST_REDIS_URL")
    if given:
        yield given
        return
    with RedisServer() as server:
        yield server.url


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    yield client
    client.close()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A superuser URL of a real PostgreSQL server (stopped after only if started here)."""
    with postgres_server() as url:
        yield url


@pytest.fixture
def pg_database(postgres_url: str) -> Iterator[str]:
    """The URL of a fresh, empty database (sgr_test_<random>), dropped after the test."""
    with fresh_database(postgres_url) as url:
        yield url


@pytest.fixture(params=["sqlite", "postgres"])
def hot_store_url(request: pytest.FixtureRequest) -> str:
    """SGR_HOT_STORE_URL for each backend: empty (the SQLite file in the data folder) or a fresh
    PostgreSQL database."""
    if request.param == "sqlite":
        return ""
    return str(request.getfixturevalue("pg_database"))


@pytest.fixture(scope="session")
def cold_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cold") / "cold.duckdb"
    write_history(path, customers(500, seed=3, now=NOW))
    sync_snapshot(path, path.with_name("history.sqlite"))
    return path


@pytest.fixture
def data_dir(tmp_path: Path, cold_db: Path) -> Path:
    """A data folder as `sgr setup-data` leaves it: a cold store, its history snapshot, and a
    fresh hot store."""
    (tmp_path / "cold.duckdb").symlink_to(cold_db)
    (tmp_path / "history.sqlite").symlink_to(cold_db.with_name("history.sqlite"))
    open_hot_store("", tmp_path / "hot.sqlite").close()  # workers open, never create, it
    return tmp_path


class Clock:
    """A settable clock, handed to the pipeline like any other collaborator."""

    def __init__(self, start: datetime = NOW) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def make_deps(
    data_dir: Path,
    client: redis.Redis | None = None,
    engine: Engine | None = None,
    clock: Clock | None = None,
    on_invalid_answer: str = "policy",
    hot_store_url: str = "",
    **rule_overrides: Any,
) -> Deps:
    settings = Settings(**rule_overrides)  # type: ignore[arg-type]
    rules = settings.rule_config()
    hot = open_hot_store(hot_store_url, data_dir / "hot.sqlite")
    clock = clock or Clock()
    keys = Keys.from_settings(settings)
    return Deps(
        hot=hot,
        history=HistorySnapshot(data_dir / "history.sqlite"),
        engine=engine or PolicyEngine(rules),
        fallback=PolicyEngine(rules),
        outbox=Outbox(hot, Publisher(client or fakeredis.FakeRedis(), keys), clock),
        rules=rules,
        clock=clock,
        offer_ttl=settings.offer_ttl,
        on_invalid_answer=on_invalid_answer,
        experiment=settings.experiment(),
        attribution=timedelta(hours=settings.attribution_hours),
    )


def make_runtime(data_dir: Path, client: redis.Redis, **overrides: object) -> Runtime:
    """What a worker process or `sgr reap` holds, on this data folder and this Redis."""
    settings = Settings(data_dir=data_dir, engine="policy", reap_interval_s=0, **overrides)  # type: ignore[arg-type]
    keys = Keys.from_settings(settings)
    deps = make_deps(data_dir, client)
    letters = DeadLetters(client, keys.dead_letters, keys.store_failures)
    return Runtime(settings, keys, client, deps, letters)


def worker_env(data_dir: Path, **extra: str) -> dict[str, str]:
    """Environment for `rq worker` subprocesses using this data folder."""
    env = {
        "SGR_DATA_DIR": str(data_dir),
        "SGR_ENGINE": "policy",
        "SGR_LOG_LEVEL": "WARNING",
        "SGR_OFFER_DELAY_MINUTES": "0",
    }
    env.update(extra)
    return env


def event(
    kind: str = "cart_abandoned",
    *,
    event_id: str = "e1",
    user: str = "u000001",
    session: str = "s1",
    at: datetime = NOW,
    value: float = 120.0,
    margin: float = 0.4,
    **extra: object,
) -> dict[str, object]:
    payload: dict[str, object] = {
        "event_id": event_id,
        "type": kind,
        "occurred_at": at.isoformat(),
        "user_id": user,
        "session_id": session,
        **extra,
    }
    if kind not in ("order_completed", "customer_message") or "cart" in extra:
        payload.setdefault("cart", {"currency": "EUR", "value": value, "margin": margin})
    return payload
