"""One typed runtime per worker process: the settings, the Redis client, the stores, the engines
and the outbox, wired here and nowhere else.

``worker.jobs.start_process()`` builds it, flushes the outbox and starts the reaper thread.
``sgr worker`` calls it before its first job; under the stock ``rq worker`` the first job does
(``for_job``), since RQ has no start-up hook for plain functions. A forked work horse (RQ's
forking ``Worker``) builds its own, never reusing its parent's SQLite connection.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import redis
import structlog

from stores.base import HotStore, StoreMissing
from stores.history import HistorySnapshot, HistorySource
from stores.hot import open_hot_store
from worker.deadletter import DeadLetters
from worker.deps import Deps
from worker.engines.policy import PolicyEngine
from worker.engines.select import build_engine
from worker.keys import Keys
from worker.metrics import LlmFigures
from worker.outbox import Outbox
from worker.publish import Publisher
from worker.settings import Settings

log = structlog.get_logger("sgr.runtime")
SNAPSHOT_SYNC_TIMEOUT_S = 600.0


@dataclass(frozen=True)
class Runtime:
    """Everything one worker process holds open: built once, used by every job."""

    settings: Settings
    keys: Keys
    client: redis.Redis
    deps: Deps
    dead_letters: DeadLetters

    def with_own_connections(self) -> Runtime:
        """The same runtime with its own Redis client and hot-store connection (for a thread)."""
        client = redis_client(self.settings)
        hot = open_store(self.settings)
        outbox = Outbox(hot, publisher(client, self.settings, self.keys), self.deps.clock)
        deps = replace(self.deps, hot=hot, outbox=outbox)
        return replace(
            self,
            client=client,
            deps=deps,
            dead_letters=DeadLetters(client, self.keys.dead_letters, self.keys.store_failures),
        )


def redis_client(settings: Settings) -> redis.Redis:
    return redis.Redis.from_url(settings.redis_url, health_check_interval=30)


def publisher(client: redis.Redis, settings: Settings, keys: Keys) -> Publisher:
    return Publisher(
        client,
        keys,
        mark_ttl_s=int(settings.offers_retention_hours * 3600),
        maxlen=settings.offers_stream_maxlen,
        publish_cap=settings.publish_cap,
    )


def require_data_dir(settings: Settings) -> None:
    """The data folder exists, or StoreMissing naming SGR_DATA_DIR and the path (a typo there
    must not silently make a new folder and an empty store)."""
    if not settings.data_dir.is_dir():
        raise StoreMissing(
            f"SGR_DATA_DIR (or --data-dir): no data folder at {settings.data_dir}: run "
            "`sgr setup-data` first, or fix the path (nothing was created)"
        )


def open_store(settings: Settings, *, create: bool = False) -> HotStore:
    """The hot store the settings name. Only ``create`` (``sgr setup-data``, the demo) makes a
    SQLite file (and its folder) that is not there; otherwise a missing one is StoreMissing,
    naming the data folder or the URL, and nothing is left behind."""
    url = settings.hot_store_url.get_secret_value()
    if not create and not url:
        require_data_dir(settings)
        if not settings.hot_db.is_file():
            raise StoreMissing(
                f"no hot store at {settings.hot_db} (SGR_DATA_DIR={settings.data_dir}): run "
                "`sgr setup-data` first (nothing was created)"
            )
    return open_hot_store(url, settings.hot_db, create=create)


def open_history(settings: Settings) -> HistorySource:
    if settings.history_source == "duckdb":
        from stores.cold import ColdStore  # DuckDB is loaded only by workers that read it

        return ColdStore(settings.cold_db)
    if not settings.history_db.exists() and settings.cold_db.exists():
        # A data folder from before snapshots (or a sync never run): make one rather than fail
        # every job, in a child process so that this worker never loads DuckDB. Concurrent
        # workers may each write one; the renames make that harmless.
        log.warning("history_snapshot_missing", snapshot=str(settings.history_db), action="sync")
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "worker.cli",
                "history",
                "sync",
                "--data-dir",
                str(settings.data_dir),
            ],
            capture_output=True,
            text=True,
            timeout=SNAPSHOT_SYNC_TIMEOUT_S,
        )
        if done.returncode != 0:
            raise RuntimeError(
                f"`sgr history sync` failed: {done.stdout[-500:]}{done.stderr[-500:]}"
            )
    return HistorySnapshot(settings.history_db)


def build_runtime(
    settings: Settings,
    client: redis.Redis | None = None,
    history: HistorySource | None = None,
    *,
    create_store: bool = False,
) -> Runtime:
    """Open the stores, pick the engine, connect the publisher: the one wiring place (``history``
    given: that source instead of the data folder's, e.g. none for ``sgr negotiate``). The hot
    store must exist (``sgr setup-data``) unless ``create_store`` (the demo's own folder)."""
    client = client if client is not None else redis_client(settings)
    keys = Keys.from_settings(settings)
    rules = settings.rule_config()
    clock = lambda: datetime.now(UTC)  # noqa: E731
    hot = open_store(settings, create=create_store)
    deps = Deps(
        hot=hot,
        history=history if history is not None else open_history(settings),
        engine=build_engine(settings, rules, observer=LlmFigures(client, keys)),  # LLM figures
        fallback=PolicyEngine(rules),
        outbox=Outbox(hot, publisher(client, settings, keys), clock),
        rules=rules,
        clock=clock,
        offer_ttl=settings.offer_ttl,
        on_invalid_answer=settings.on_invalid_answer,
        experiment=settings.experiment(),
        attribution=timedelta(hours=settings.attribution_hours),
        recovery=settings.recovery_config(),
    )
    return Runtime(
        settings, keys, client, deps, DeadLetters(client, keys.dead_letters, keys.store_failures)
    )


_process: tuple[int, Runtime] | None = None


def install(runtime: Runtime) -> Runtime:
    """Make ``runtime`` this process's runtime (``start_process``, the demo and tests)."""
    global _process
    _process = (os.getpid(), runtime)
    return runtime


def installed() -> Runtime | None:
    """This process's runtime, if one was installed (no side effects)."""
    return _process[1] if _process is not None and _process[0] == os.getpid() else None
