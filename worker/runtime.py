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
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import redis
import redis.asyncio
import structlog
from rq import Queue

from stores.base import HotStore, StoreMissing
from stores.history import HistorySnapshot, HistorySource
from stores.hot import open_hot_store
from stores.hotstore import SqlHotStore
from worker.deadletter import DeadLetters
from worker.deps import Deps
from worker.domain.copy import Catalogue, CatalogueError
from worker.engines.base import EngineError, OfferRequest
from worker.engines.catalogue import load_catalogue
from worker.engines.policy import PolicyEngine
from worker.engines.select import build_engine
from worker.keys import Keys
from worker.metrics import LlmFigures
from worker.outbox import Outbox
from worker.publish import Publisher
from worker.settings import Settings, SettingsError

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
        publish_reasoning=settings.publish_reasoning,
    )


def require_data_dir(settings: Settings) -> None:
    """The data folder exists, or StoreMissing naming SGR_DATA_DIR and the path (a typo there
    must not silently make a new folder and an empty store)."""
    if not settings.data_dir.is_dir():
        raise StoreMissing(
            f"SGR_DATA_DIR (or --data-dir): no data folder at {settings.data_dir}: run "
            "`sgr setup-data` first, or fix the path (nothing was created)"
        )


def open_store(settings: Settings, *, create: bool = False) -> SqlHotStore:
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


def catalogue(settings: Settings) -> Catalogue:
    """The approved copy (``SGR_COPY_CATALOGUE``), or one line naming the setting and the fault."""
    try:
        return load_catalogue(settings.copy_catalogue)
    except CatalogueError as exc:
        raise SettingsError(f"SGR_COPY_CATALOGUE: {exc}") from None


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
        catalogue=catalogue(settings),
        message_mode=settings.message_mode,
        experiment=settings.experiment(),
        attribution=timedelta(hours=settings.attribution_hours),
        recovery=settings.recovery_config(),
    )
    return Runtime(
        settings, keys, client, deps, DeadLetters(client, keys.dead_letters, keys.store_failures)
    )


# The deadline sized from a warm-up: ``SGR_LLM_CONCURRENCY`` answers at once (at most
# ``WARMUP_PARALLEL``), as the workers ask, timed, and the deadline ``WARMUP_SAFETY`` times the
# slowest (measured on SmolLM2-135M, two cores, load average 9-16: one answer alone 10-15 s,
# eight at once 57-130 s each, and the load moves that by two or three within minutes). A timeout
# later raises the deadline by half, up to the same ceiling (``VllmEngine.timeout_ceiling_s``).
WARMUP_SAFETY = 3.0
WARMUP_PARALLEL = 8


def warmup_factor(concurrency: int) -> float:
    """How many times the slowest warm-up answer the deadline allows."""
    return WARMUP_SAFETY


def llm_timeout_ceiling(settings: Settings) -> float:
    """The longest deadline of an answer the job timeout leaves room for. One deadline covers an
    answer's every attempt and wait (``OpenAICompat.call``), and a job asks at most twice in a
    row (a negotiation turn: route, then price; a batch's carts ask side by side), so half the
    job timeout less the backoff, a second to spare."""
    backoff = settings.llm_backoff_s * 2**settings.llm_retries
    return max(1.0, (settings.job_timeout_s - backoff) / 2 - 1.0)


def sized_timeout(
    measured_s: float, configured_s: float, ceiling_s: float, concurrency: int = 1
) -> float:
    """``warmup_factor`` x the slowest warm-up answer, never below the configured deadline, never above
    the ceiling (or the configured deadline, if that is higher), to a tenth of a second."""
    wanted = max(configured_s, measured_s * warmup_factor(concurrency))
    return round(min(max(ceiling_s, configured_s), wanted), 1)


def warmup_request(catalogue: Catalogue, message_mode: str) -> OfferRequest:
    """A typical offer request (a new customer's cart of 120 EUR, cap 5 %), for the warm-up."""
    from worker.domain.copy import CartFacts, allowed
    from worker.domain.rules import Decision
    from worker.engines.schemas import offer_schema

    entries = allowed(catalogue, CartFacts("new_customer", "in_stock", 0))
    choices = tuple(e.text for e in entries) if message_mode == "catalogue" else None
    return OfferRequest(
        event_id="warm-up",
        cart_value=120.0,
        currency="EUR",
        margin=0.4,
        inventory="in_stock",
        history=None,
        customer_message=None,
        decision=Decision(True, "eligible", "new_customer", 5.0, ("warm-up",)),
        min_pct=1.0,
        schema=offer_schema(5.0, 1.0, choices),
        copy=entries,
        message_mode=message_mode if entries else "free",
    )


def size_llm_timeout(runtime: Runtime) -> dict[str, Any] | None:
    """``SGR_LLM_WARMUP``: time ``SGR_LLM_CONCURRENCY`` answers at once (at most
    ``WARMUP_PARALLEL``) and size the engine's deadline from the slowest (``sized_timeout``);
    what was measured and set, or None (no LLM engine, or it is off). A failed warm-up keeps
    ``SGR_LLM_TIMEOUT_S`` (logged)."""
    settings, engine = runtime.settings, runtime.deps.engine
    warm_up = getattr(engine, "warm_up", None)
    if not settings.llm_warmup or warm_up is None:
        return None
    ceiling = max(settings.llm_timeout_s, llm_timeout_ceiling(settings))
    request = warmup_request(runtime.deps.catalogue, runtime.deps.message_mode)
    parallel = max(1, min(settings.llm_concurrency, WARMUP_PARALLEL))
    try:
        with ThreadPoolExecutor(max_workers=parallel) as pool:
            times = list(pool.map(lambda _: float(warm_up(request, ceiling)), range(parallel)))
        measured = max(times)
    except EngineError as exc:
        log.warning("llm_warmup_failed", kind=exc.kind, detail=exc.detail[:200])
        return {"warmup_s": None, "timeout_s": settings.llm_timeout_s, "why": exc.kind}
    timeout = sized_timeout(measured, settings.llm_timeout_s, ceiling, settings.llm_concurrency)
    engine.set_timeout(timeout, ceiling)  # type: ignore[attr-defined]
    log.info("llm_timeout_sized", warmup_s=round(measured, 2), timeout_s=timeout, ceiling_s=ceiling)
    return {"warmup_s": round(measured, 2), "timeout_s": timeout, "why": None}


_process: tuple[int, Runtime] | None = None


def install(runtime: Runtime) -> Runtime:
    """Make ``runtime`` this process's runtime (``start_process``, the demo and tests)."""
    global _process
    _process = (os.getpid(), runtime)
    return runtime


def installed() -> Runtime | None:
    """This process's runtime, if one was installed (no side effects)."""
    return _process[1] if _process is not None and _process[0] == os.getpid() else None


class ApiStores:
    """The API's hot-store connections. PostgreSQL: one store per thread (each thread's
    transaction its own), used side by side. SQLite: one store for the process, one request at a
    time on it (``use`` holds the process's lock): SQLite has one writer per file anyway, and
    threads queueing on a lock cost less than connections sleeping in SQLite's busy handler."""

    def __init__(self, opener: Callable[[], HotStore], shared: bool) -> None:
        self.opener, self.shared = opener, shared
        self._local = threading.local()
        self._all: list[HotStore] = []
        self._guard = threading.Lock()
        self._one = threading.Lock()  # the shared store's user

    def _store(self) -> HotStore:
        if self.shared:
            with self._guard:
                if not self._all:
                    self._all.append(self.opener())
                return self._all[0]
        store: HotStore | None = getattr(self._local, "store", None)
        if store is None:
            store = self.opener()
            self._local.store = store
            with self._guard:
                self._all.append(store)
        return store

    @contextmanager
    def use(self) -> Iterator[HotStore]:
        """This request's store (with SQLite: the process's, held until the block ends)."""
        if not self.shared:
            yield self._store()
            return
        with self._one:
            yield self._store()

    def close(self) -> None:
        with self._guard:
            stores, self._all = self._all, []
        for store in stores:
            store.close()


@dataclass(frozen=True)
class ApiRuntime:
    """What one ``sgr api`` process holds: the settings, Redis, the queue events go onto (as
    ``enqueue_events`` fills it for ``sgr produce`` and the bridge), the hot store per thread and
    the clock. No engine and no history: the API enqueues, the workers' runner decides."""

    settings: Settings
    keys: Keys
    client: redis.Redis
    aclient: redis.asyncio.Redis  # the event loop's (API keys, rate limit)
    queue: Queue
    stores: ApiStores
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))

    def close(self) -> None:
        self.stores.close()
        self.client.close()


def build_api_runtime(settings: Settings, client: redis.Redis | None = None) -> ApiRuntime:
    """The API's wiring (the same settings, keys, Redis and hot store as a worker's); the schema
    is migrated once here, before the first request. Like a worker it never creates the data
    folder or the store: a missing one (a typo in SGR_DATA_DIR) is StoreMissing, not an empty
    store whose every outcome is a 404 while the workers write theirs elsewhere."""
    client = client if client is not None else redis_client(settings)
    url = settings.hot_store_url.get_secret_value()
    first = open_store(settings)  # migrations run now; a bad or missing store says so
    sqlite = first.dialect == "sqlite"
    first.close()
    return ApiRuntime(
        settings,
        Keys.from_settings(settings),
        client,
        redis.asyncio.Redis.from_url(settings.redis_url, health_check_interval=30),
        Queue(settings.queue, connection=client),
        ApiStores(
            lambda: open_hot_store(url, settings.hot_db, migrate=False, create=False),
            shared=sqlite,
        ),
    )
