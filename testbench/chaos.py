"""The chaos run: a load of cart events through real `rq worker` processes while faults are
injected on a schedule, then a reconciliation of every accepted event against the stores and the
result stream. ``sgr chaos`` or ``python -m testbench.chaos``; it talks only to 127.0.0.1.

It starts its own redis-server (AOF on, on a free loopback port, so restarting it harms nothing
else), a StandInLLM (the OpenAI-compatible stand-in at the edge; not vLLM), a temporary data folder
and a fleet of stock ``rq worker -w rq.worker.SimpleWorker`` processes with engine ``vllm`` pointed
at the stand-in and a short LLM timeout. It plays a supervisor too: a worker that exits on its
own is replaced (counted as ``worker_restarts``), as systemd ``Restart=always`` would.

Faults, each at a point of progress (share of events with an outcome): SIGKILL of a worker that is
busy with a job (and a replacement), a restart of redis-server, a crash of redis-server (SIGKILL;
the producer sends the last seconds' events again), the stand-in timing out and then
answering HTTP 500 for a while; and in the load itself: duplicate events, sessions sent newest
first, and malformed payloads (which must end as dead letters).

Beyond one host (``hot_store_url``, ``folders``): the hot store in PostgreSQL (a fresh database
the run creates on that server, and drops unless ``keep``), and the workers split among
``folders`` data folders, each with its own cold store and history snapshot, so they share nothing
but Redis and PostgreSQL, like hosts of a fleet; the reconciliation reads PostgreSQL.
``python -m testbench.chaos --folders 2`` uses the PostgreSQL of testbench/pgproc.py.

The run is bounded (``max_time_s``); ``ok`` in the report is true when nothing was lost, nothing
doubled, every offer is on the stream exactly once, every session's state is its newest event's,
and every fault kind was injected at least once.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import signal
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol, cast

import httpx
import redis
import structlog
from rq import Queue, Retry, Worker

from producers.enqueue import enqueue_events
from producers.synthetic import StreamConfig, customers, event_stream
from stores.base import HotStore
from stores.cold import write_history
from stores.hot import open_hot_store
from stores.sqlfiles import sql
from stores.sync import sync_snapshot
from testbench.fleet import Fleet
from testbench.pgproc import fresh_database, postgres_server
from testbench.redisproc import RedisServer
from testbench.standin_llm import StandInLLM
from worker.deadletter import payload_event_id
from worker.keys import Keys
from worker.reaper import stats as reaper_stats
from worker.settings import Settings, redact_url

log = structlog.get_logger("sgr.chaos")

QUEUE = "cart-events"
STREAM = "sgr:offers"
DEAD_LETTERS = "sgr:dead-letters"
RESEND_WINDOW_S = 3.0  # after a Redis crash the producer sends again what it sent this recently
FAULT_KINDS = (
    "worker_sigkill",
    "redis_restart",
    "redis_crash",
    "llm_timeout",
    "llm_error",
    "duplicates",
    "out_of_order",
    "malformed",
    "parallel_turns",
    "abandon_vs_turn",
    "redeem_during_turn",
    "delayed_decisions",
)
PRICE = "This is too expensive, can you give me a better price please?"


@dataclass
class ChaosConfig:
    events: int = 500
    workers: int = 3
    seed: int = 23
    llm_latency_s: float = 0.03
    llm_timeout_s: float = 0.5
    fault_window_s: float = 1.5  # how long the stand-in times out / fails each time
    duplicate_share: float = 0.05
    malformed_share: float = 0.03
    out_of_order_share: float = 0.15  # of the sessions with two or more events
    waves: int = 4
    max_time_s: float = 240.0
    keep: bool = False  # keep the temporary folder (worker logs, stores, AOF) for a look
    batch: int = 1  # events per RQ job (handle_batch when more than 1)
    hot_store_url: str = (
        ""  # a PostgreSQL server's URL: the run's hot store is a new database on it
    )
    folders: int = 1  # data folders the workers are split among (more than 1 needs PostgreSQL)
    races: int = 20  # customers whose two events race on two sessions (turn+turn, abandon+turn)
    redeem_races: int = 8  # customers who redeem their code while their next turn is running
    delay_s: float = 3.0  # SGR_OFFER_DELAY_MINUTES of the workers, in seconds (docs/recovery.md)
    delayed: int = 3  # fresh abandonments per wave whose decision waits; every other one ordered

    def problem(self) -> str | None:
        """What is wrong with this configuration, or None."""
        if not 1 <= self.folders <= self.workers:
            return f"--folders {self.folders}: from 1 to the number of workers ({self.workers})"
        if self.folders > 1 and not self.hot_store_url:
            return (
                f"--folders {self.folders} needs --hot-store-url (PostgreSQL): SQLite is one host's"
            )
        if self.hot_store_url and not self.hot_store_url.startswith(
            ("postgresql://", "postgres://")
        ):
            return (
                f"--hot-store-url {redact_url(self.hot_store_url)!r}: a postgresql:// URL or 'auto'"
            )
        return None


class ReconciledStore(HotStore, Protocol):
    """The hot store as the reconciliation reads it (both backends have ``query``)."""

    def query(self, text: str) -> list[Any]: ...


@dataclass
class Load:
    payloads: list[Any]
    valid: list[dict[str, Any]]  # the well-formed events (duplicates not repeated)
    faults: Counter[str] = field(default_factory=Counter)


MALFORMED: tuple[Callable[[int, dict[str, Any]], Any], ...] = (
    lambda i, e: {**e, "event_id": f"bad-type-{i}", "type": "cart_teleported"},
    lambda i, e: {k: v for k, v in e.items() if k != "cart"} | {"event_id": f"bad-cart-{i}"},
    lambda i, e: {**e, "event_id": f"bad-time-{i}", "occurred_at": "yesterday-ish"},
    lambda i, e: {**e, "event_id": f"bad-extra-{i}", "discount_please": 90},
    lambda i, e: f"not an event at all #{i}",
    lambda i, e: [1, 2, 3, i],
)


def build_load(cfg: ChaosConfig) -> Load:
    """``cfg.events`` payloads: synthetic sessions, some sent newest-first, plus duplicates and
    malformed ones at random places (duplicates always after their original)."""
    rng = random.Random(cfg.seed)
    n_dup = max(1, round(cfg.events * cfg.duplicate_share))
    n_bad = max(1, round(cfg.events * cfg.malformed_share))
    n_valid = max(4, cfg.events - n_dup - n_bad)
    stream = event_stream(StreamConfig(sessions=n_valid, seed=cfg.seed))
    valid = [e for _, e in zip(range(n_valid), stream, strict=False)]
    load = Load(payloads=list(valid), valid=valid)

    # Out of order: in some sessions the newest two events are sent the other way round.
    positions: dict[str, list[int]] = {}
    for i, e in enumerate(load.payloads):
        positions.setdefault(e["session_id"], []).append(i)
    multi = [p for p in positions.values() if len(p) >= 2]
    for pos in rng.sample(multi, max(1, round(len(multi) * cfg.out_of_order_share))):
        a, b = pos[-2], pos[-1]
        load.payloads[a], load.payloads[b] = load.payloads[b], load.payloads[a]
        load.faults["out_of_order"] += 1

    for _ in range(n_dup):  # a later copy of an earlier event
        src = rng.randrange(len(load.payloads))
        if isinstance(load.payloads[src], dict):
            load.payloads.insert(rng.randint(src + 1, len(load.payloads)), dict(load.payloads[src]))
            load.faults["duplicates"] += 1
    for i in range(n_bad):
        make = MALFORMED[i % len(MALFORMED)]
        load.payloads.insert(rng.randrange(len(load.payloads) + 1), make(i, rng.choice(valid)))
        load.faults["malformed"] += 1
    for r in range(cfg.races):  # one customer, two sessions, two events side by side
        pair = race_pair(r, valid[0]["occurred_at"])
        where = rng.randrange(len(load.payloads) + 1)
        load.payloads[where:where] = pair
        load.valid.extend(pair)
        load.faults["parallel_turns" if r % 2 == 0 else "abandon_vs_turn"] += 1
    return load


def race_event(kind: str, event_id: str, user: str, session: str, at: str, **extra: Any) -> dict[str, Any]:  # fmt: skip
    return {
        "event_id": event_id,
        "type": kind,
        "occurred_at": at,
        "user_id": user,
        "session_id": session,
        "cart": {"currency": "EUR", "value": 180.0, "margin": 0.45},
        **extra,
    }


def delayed_session(k: int) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """A fresh abandonment (dated now, so its decision waits ``delay_s``) and, for every other
    one, the order that follows it a second later (before the decision is due)."""
    at = datetime.now(UTC).isoformat()
    user, session = f"user_{4800 + k}", f"delayed-{k}"
    abandon = race_event("cart_abandoned", f"delayed-{k}-a", user, session, at)
    order = race_event("order_completed", f"delayed-{k}-o", user, session, at) if k % 2 else None
    return abandon, order


def race_pair(r: int, at: str) -> list[dict[str, Any]]:
    """Two events of one customer on two sessions at once: two price questions (even ``r``), or
    an abandonment and a price question (odd ``r``). Each may make a code; one may stand."""
    user = f"user_{4000 + r}"
    first = (
        race_event("customer_message", f"race-{r}-a", user, f"race-{r}-a", at, message=PRICE)
        if r % 2 == 0
        else race_event("cart_abandoned", f"race-{r}-a", user, f"race-{r}-a", at)
    )
    return [first, race_event("customer_message", f"race-{r}-b", user, f"race-{r}-b", at, message=PRICE)]  # fmt: skip


class Chaos:
    """One run; ``run()`` returns the report (a dict)."""

    def __init__(self, cfg: ChaosConfig) -> None:
        self.cfg = cfg
        self.rng = random.Random(cfg.seed)
        self.dir = Path(tempfile.mkdtemp(prefix="sgr-chaos-"))
        self.faults: Counter[str] = Counter()
        self.accepted: dict[str, int] = {}  # event id -> times enqueued
        self.restarts = 0
        self.killed: set[int] = set()
        self.sent: list[tuple[float, list[Any]]] = []  # (when, payloads) as enqueued
        self.resent = 0
        self.orders_due: list[tuple[float, dict[str, Any]]] = []  # delayed sessions' orders
        self.delayed_sent = 0

    # --- plumbing ----------------------------------------------------------------------------
    def _retry(self, what: str, action: Callable[[], Any], limit_s: float = 30.0) -> Any:
        """Producer-side: keep trying while redis-server restarts (it is part of the chaos)."""
        deadline = time.monotonic() + limit_s
        while True:
            try:
                return action()
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                if time.monotonic() > deadline:
                    raise
                log.info("redis_unavailable", during=what, error=str(exc)[:120])
                time.sleep(0.2)

    def _llm(self, fault: str) -> None:
        httpx.post(f"{self.llm_base}/_standin/config", json={"fault": fault}, timeout=5)
        log.info("llm_fault", fault=fault)

    def _enqueue(self, payloads: list[Any]) -> None:
        report = self._retry(
            "enqueue",
            lambda: enqueue_events(
                self.queue, payloads, validate=False, max_attempts=3, batch_size=self.cfg.batch
            ),
        )
        self.sent.append((time.monotonic(), payloads))
        size = self.cfg.batch
        for position, payload in enumerate(payloads):
            job_id = report.job_ids[position // size]
            index = position % size if size > 1 else None
            key = payload_event_id(payload, job_id, index)
            self.accepted[key] = self.accepted.get(key, 0) + 1

    def _offers(self) -> int:
        return len(self.hot.query(sql("hot/reconcile_offers")))

    def _done(self) -> int:
        return int(self.hot.query(sql("hot/count_outcomes"))[0]["n"])

    def _supervise(self) -> None:
        """Replace workers that exited on their own (a supervisor's job, on each host)."""
        for fleet in self.fleets:
            for proc in list(fleet.procs):
                if proc.poll() is not None and proc.pid not in self.killed:
                    fleet.procs.remove(proc)
                    fleet.spawn()
                    self.restarts += 1
                    log.warning("worker_replaced", pid=proc.pid, rc=proc.returncode)

    def _crash_redis(self) -> None:
        """SIGKILL redis-server and start it again from its AOF (fsync every second): what it
        acknowledged in about the last second is gone. The producer then does what the README
        asks of a shop after a Redis crash: it sends the events of the last seconds again (each
        event is idempotent by its id)."""
        log.warning("redis_crash")
        crashed_at = time.monotonic()
        self.server.kill()
        time.sleep(0.5)
        self.server.start()
        recent = [p for at, batch in self.sent if at >= crashed_at - RESEND_WINDOW_S for p in batch]
        if recent:
            self._enqueue(recent)
            self.resent += len(recent)

    def _kill_busy_worker(self) -> bool:
        """SIGKILL a worker that is running a job; spawn its replacement. False if none busy."""
        alive = {p.pid: (fleet, p) for fleet in self.fleets for p in fleet.alive()}
        try:
            busy = [
                w
                for w in Worker.all(queue=self.queue)
                if w.get_state() == "busy" and w.pid in alive and w.get_current_job_id()
            ]
        except redis.RedisError:
            return False
        if not busy:
            return False
        target = self.rng.choice(busy)
        fleet, proc = alive[target.pid or 0]
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        self.killed.add(proc.pid)
        fleet.procs.remove(proc)
        fleet.spawn()
        log.warning("worker_sigkilled", pid=proc.pid, job=target.get_current_job_id())
        return True

    # --- the run -----------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        cfg = self.cfg
        problem = cfg.problem()
        if problem:
            raise ValueError(problem)
        if not cfg.hot_store_url:
            return self._run("")
        with fresh_database(cfg.hot_store_url, "sgr_chaos_", keep=cfg.keep) as url:
            return self._run(url)

    def _folder(self, index: int) -> Path:
        """A host's data folder: its own cold store and history snapshot."""
        folder = self.dir if self.cfg.folders == 1 else self.dir / f"host{index}"
        folder.mkdir(parents=True, exist_ok=True)
        if index == 0:
            write_history(folder / "cold.duckdb", customers(5000, seed=self.cfg.seed))
        else:  # the same cold store's data, then the host's own `sgr history sync`
            shutil.copyfile(self.dir / "host0" / "cold.duckdb", folder / "cold.duckdb")
        sync_snapshot(folder / "cold.duckdb", folder / "history.sqlite")
        return folder

    def _run(self, hot_url: str) -> dict[str, Any]:
        cfg = self.cfg
        started = time.monotonic()
        folders = [self._folder(i) for i in range(cfg.folders)]
        self.hot = cast(ReconciledStore, open_hot_store(hot_url, self.dir / "hot.sqlite"))
        load = build_load(cfg)
        self.faults.update(load.faults)
        with RedisServer(appendonly=True) as server, StandInLLM(latency_s=cfg.llm_latency_s) as llm:
            self.server, self.llm_base = server, llm.url.removesuffix("/v1")
            self.client = redis.Redis.from_url(server.url, socket_timeout=5)
            self.queue = Queue(QUEUE, connection=self.client)
            env = {
                "SGR_HOT_STORE_URL": hot_url,
                "SGR_ENGINE": "vllm",
                "SGR_LLM_URL": llm.url,
                "SGR_LLM_MODEL": llm.model,
                "SGR_LLM_TIMEOUT_S": str(cfg.llm_timeout_s),
                "SGR_LLM_RETRIES": "1",
                "SGR_LLM_BACKOFF_S": "0.05",
                "SGR_BREAKER_FAILURES": "3",
                "SGR_BREAKER_COOLDOWN_S": "1.0",
                "SGR_REAP_INTERVAL_S": "1.0",
                "SGR_JOB_TIMEOUT_S": "60",
                "SGR_LOG_LEVEL": "WARNING",
                # the synthetic load is hours old (decided at once); the fresh abandonments of
                # _delay wait this long, through the kills and restarts
                "SGR_OFFER_DELAY_MINUTES": str(cfg.delay_s / 60),
                "SGR_QUIET_HOURS": "",
            }
            shares = [cfg.workers // cfg.folders + (i < cfg.workers % cfg.folders) for i in range(cfg.folders)]  # fmt: skip
            self.fleets = [
                Fleet(n, server.url, QUEUE, {**env, "SGR_DATA_DIR": str(f)}, log_dir=f)
                for n, f in zip(shares, folders, strict=True)
            ]
            for fleet in self.fleets:
                fleet.start()
            try:
                self._drive(load, time.monotonic())  # max_time_s bounds the run, not the set-up
                self._redeem_races(load)
            finally:
                for fleet in self.fleets:
                    fleet.stop(timeout_s=15)
            report = self.reconcile(load, time.monotonic() - started)
        report["hot_store"] = self.hot.where
        report["folders"] = cfg.folders
        self.hot.close()
        if not cfg.keep:
            shutil.rmtree(self.dir, ignore_errors=True)
        return report

    def _drive(self, load: Load, started: float) -> None:
        cfg = self.cfg
        total = len(load.payloads)
        waves = [load.payloads[i :: cfg.waves] for i in range(cfg.waves)]
        # Faults at shares of progress; the LLM ones are switched off again after a window.
        schedule: list[tuple[float, str]] = [
            (0.10, "worker_sigkill"),
            (0.22, "llm_timeout"),
            (0.38, "redis_restart"),
            (0.45, "redis_crash"),
            (0.52, "llm_error"),
            (0.60, "worker_sigkill"),
            (0.72, "redis_restart"),
        ]
        llm_off_at: float | None = None
        deadline = started + cfg.max_time_s
        while time.monotonic() < deadline:
            self._supervise()
            queued = self._retry("queue length", lambda: self.queue.count)
            if waves and queued < 40:
                self._enqueue(waves.pop(0))
                self._delay(load)
            self._orders_due(load)
            expected = len(self.accepted) if not waves else total
            progress = self._done() / max(1, expected)
            now = time.monotonic()
            if llm_off_at is not None and now >= llm_off_at:
                self._llm("none")
                llm_off_at = None
            if schedule and progress >= schedule[0][0] and llm_off_at is None:
                kind = schedule[0][1]
                done = True
                if kind == "worker_sigkill":
                    done = self._kill_busy_worker()
                elif kind == "redis_restart":
                    log.warning("redis_restart")
                    self.server.restart()
                elif kind == "redis_crash":
                    self._crash_redis()
                elif kind in ("llm_timeout", "llm_error"):
                    self._llm("timeout" if kind == "llm_timeout" else "error500")
                    llm_off_at = now + cfg.fault_window_s
                if done:
                    self.faults[kind] += 1
                    schedule.pop(0)
                elif not waves and self.faults[kind] and self._drained():
                    schedule.pop(0)  # a repeat kill with no job left to interrupt: skip it
            if (
                not waves
                and not schedule
                and llm_off_at is None
                and not self.orders_due
                and self._drained()
            ):
                return
            time.sleep(0.05)
        log.error("chaos_time_limit", max_time_s=cfg.max_time_s)
        if llm_off_at is not None:
            self._llm("none")

    def _enqueue_front(self, payload: dict[str, Any]) -> None:
        """One event at the front of the queue (a fresh event that should not wait behind the
        wave: its decision is due ``delay_s`` after it happened)."""
        job = self._retry(
            "enqueue",
            lambda: self.queue.enqueue(
                "worker.jobs.handle_event", payload, at_front=True, retry=Retry(max=2)
            ),
        )
        self.sent.append((time.monotonic(), [payload]))
        key = payload_event_id(payload, job.id, None)
        self.accepted[key] = self.accepted.get(key, 0) + 1

    def _delay(self, load: Load) -> None:
        """Fresh abandonments whose decisions wait ``delay_s`` (through whatever fault comes
        next); every other one's order follows a second later, before its decision is due."""
        for _ in range(self.cfg.delayed):
            abandon, order = delayed_session(self.delayed_sent)
            self.delayed_sent += 1
            self._enqueue_front(abandon)
            load.valid.append(abandon)
            self.faults["delayed_decisions"] += 1
            if order is not None:
                self.orders_due.append((time.monotonic() + 1.0, order))

    def _orders_due(self, load: Load) -> None:
        now = time.monotonic()
        ready = [o for at, o in self.orders_due if at <= now]
        self.orders_due = [(at, o) for at, o in self.orders_due if at > now]
        for order in ready:
            order = {**order, "occurred_at": datetime.now(UTC).isoformat()}
            self._enqueue_front(order)
            load.valid.append(order)

    def _wait_outcome(self, event_id: str, limit_s: float = 30.0) -> Any:
        deadline = time.monotonic() + limit_s
        while time.monotonic() < deadline:
            self._supervise()
            found = self.hot.get_outcome(event_id)
            if found is not None:
                return found
            time.sleep(0.02)
        return None

    def _redeem_races(self, load: Load) -> None:
        """Customers who get a counter-offer, ask for a better one, and redeem the first code at
        the checkout while that second turn is running: the second turn must make no new code."""
        slow = min(0.35, self.cfg.llm_timeout_s * 0.7)  # the turn's answer takes a while, so the
        httpx.post(f"{self.llm_base}/_standin/config", json={"latency_s": slow}, timeout=5)
        try:
            for r in range(self.cfg.redeem_races):
                user, session = f"user_{4500 + r}", f"redeem-{r}"
                at = datetime.now(UTC).isoformat()
                first = race_event("customer_message", f"redeem-{r}-1", user, session, at, message=PRICE)  # fmt: skip
                self._enqueue([first])
                load.valid.append(first)
                prior = self._wait_outcome(first["event_id"])
                offer = self.hot.get_offer(prior.offer_id) if prior and prior.offer_id else None
                at = datetime.now(UTC).isoformat()
                second = race_event("customer_message", f"redeem-{r}-2", user, session, at, message="Still too much, please go lower.")  # fmt: skip
                self._enqueue([second])
                load.valid.append(second)
                if offer is not None:
                    time.sleep(slow / 3)  # the second turn is waiting for its answer now
                    if self.hot.redeem(offer.code, datetime.now(UTC)):
                        self.faults["redeem_during_turn"] += 1
                self._wait_outcome(second["event_id"])
        finally:
            latency = {"latency_s": self.cfg.llm_latency_s}
            httpx.post(f"{self.llm_base}/_standin/config", json=latency, timeout=5)
        deadline = time.monotonic() + 30
        while not self._drained() and time.monotonic() < deadline:
            self._supervise()
            time.sleep(0.05)

    def _drained(self) -> bool:
        if self._done() < len(self.accepted):
            return False
        q = self.queue
        return bool(
            self._retry(
                "drain check",
                lambda: (
                    q.count == 0
                    and q.started_job_registry.count == 0
                    and not self.hot.unpublished_offers(1)
                    # offers a crash took off the stream are back (the reaper re-publishes them)
                    and int(cast(int, q.connection.xlen(STREAM))) >= self._offers()
                ),
            )
        )

    # --- the reconciliation ------------------------------------------------------------------
    def reconcile(self, load: Load, elapsed_s: float) -> dict[str, Any]:
        outcomes = {r["event_id"]: dict(r) for r in self.hot.query(sql("hot/reconcile_outcomes"))}
        offers = [dict(r) for r in self.hot.query(sql("hot/reconcile_offers"))]
        sessions = {
            r["session_id"]: r["last_event_id"]
            for r in self.hot.query(sql("hot/reconcile_sessions"))
        }
        entries = self._retry("xrange", lambda: self.client.xrange(STREAM))
        on_stream = [  # offer entries (the stream carries negotiation replies too)
            fields[b"offer_id"].decode()
            for _id, fields in entries
            if fields.get(b"type", b"offer") == b"offer"
        ]

        lost = sorted(e for e in self.accepted if e not in outcomes)
        counts = Counter(o["outcome"] for e, o in outcomes.items() if e in self.accepted)
        offer_ids = {o["offer_id"] for o in offers}
        per_event = Counter(o["event_id"] for o in offers)
        per_session = Counter(o["session_id"] for o in offers)
        duplicate_offers = (
            sum(n - 1 for n in per_event.values())
            + sum(n - 1 for n in per_session.values())
            + (len(on_stream) - len(set(on_stream)))
        )
        recorded_offers = {o["offer_id"] for o in outcomes.values() if o["outcome"] == "offer"}
        published_mismatch = (
            len(offer_ids ^ set(on_stream))
            + sum(1 for o in offers if o["published_at"] is None)
            + len(recorded_offers ^ offer_ids)
        )
        newest: dict[str, tuple[datetime, str]] = {}
        for e in load.valid:
            key = (datetime.fromisoformat(e["occurred_at"]), e["event_id"])
            newest[e["session_id"]] = max(newest.get(e["session_id"], key), key)
        state_mismatch = sum(1 for s, (_, eid) in newest.items() if sessions.get(s) != eid)
        over_cap = sum(1 for o in offers if o["discount_pct"] > o["cap_pct"] + 1e-9)
        delayed = {k: int(v) for k, v in self.hot.query(sql("hot/reconcile_scheduled"))[0].items()}
        codes = [dict(r) for r in self.hot.query(sql("hot/reconcile_codes"))]
        two_live_codes = sum(1 for c in codes if int(c["live_codes"]) > 1)
        after_redemption = sum(int(c["after_redemption"]) for c in codes)
        faults = {kind: self.faults.get(kind, 0) for kind in FAULT_KINDS}
        report: dict[str, Any] = {
            "accepted": len(self.accepted),
            "enqueued": sum(self.accepted.values()),
            "offers": counts.get("offer", 0),
            "no_offer": counts.get("no_offer", 0),
            "dead_letter": counts.get("dead_letter", 0),
            "lost": len(lost),
            "duplicate_offers": duplicate_offers,
            "published_mismatch": published_mismatch,
            "state_mismatch": state_mismatch,
            "over_cap": over_cap,
            "two_live_codes": two_live_codes,  # customers with more than one usable code
            "offers_after_redemption": after_redemption,
            "stream_entries": len(on_stream),
            "dead_letter_list": int(self._retry("llen", lambda: self.client.llen(DEAD_LETTERS))),
            "offers_by_engine": dict(Counter(o["engine"] for o in offers)),
            # decisions that waited (docs/recovery.md): none early, none left, none after an order
            "delayed": delayed,
            "faults": faults,
            "recovery": {
                **self._retry(
                    "stats", lambda: reaper_stats(self.client, Keys.from_settings(Settings()))
                ),
                "worker_restarts": self.restarts,
                "resent_after_crash": self.resent,
                "reran_events": sum(1 for o in outcomes.values() if o["attempts"] > 1),
            },
            "elapsed_s": round(elapsed_s, 1),
        }
        report["ok"] = (
            not lost
            and duplicate_offers == 0
            and published_mismatch == 0
            and state_mismatch == 0
            and over_cap == 0
            and two_live_codes == 0
            and after_redemption == 0
            and delayed["decided_early"] == 0
            and delayed["undecided"] == 0
            and delayed["offer_after_order"] == 0
            and all(n >= 1 for n in faults.values())
        )
        if delayed["decided_early"] or delayed["undecided"] or delayed["offer_after_order"]:
            report["delayed_rows"] = [
                {k: str(v) for k, v in dict(r).items()}
                for r in self.hot.query(sql("hot/reconcile_scheduled_detail"))
            ]
        if lost:
            report["lost_ids"] = lost[:20]
            report["lost_jobs"] = self._retry("diagnose", lambda: self.diagnose(lost[:20]))
        if self.cfg.keep:
            report["dir"] = str(self.dir)
        return report

    def diagnose(self, event_ids: list[str]) -> list[dict[str, Any]]:
        """Where the jobs of lost events are in RQ (to find the hole, not to fix the figures)."""
        from rq.job import Job

        q = self.queue
        where = {
            "queued": set(q.get_job_ids()),
            "started": set(q.started_job_registry.get_job_ids(cleanup=False)),
            "failed": set(q.failed_job_registry.get_job_ids(cleanup=False)),
            "finished": set(q.finished_job_registry.get_job_ids(cleanup=False)),
            "intermediate": {
                j.decode() if isinstance(j, bytes) else j
                for j in cast(list[Any], self.client.lrange(q.intermediate_queue.key, 0, -1))
            },
        }
        wanted = set(event_ids)
        found = []
        for key in self.client.scan_iter("rq:job:*", count=1000):
            name = key.decode()
            if name.count(":") != 2:
                continue
            job = Job.fetch(name.split(":")[2], connection=self.client)
            payload = job.args[0] if job.args else None
            event_id = payload.get("event_id") if isinstance(payload, dict) else None
            if event_id in wanted:
                found.append(
                    {
                        "event_id": event_id,
                        "job_id": job.id,
                        "status": str(job.get_status()),
                        "retries_left": job.retries_left,
                        "in": [k for k, ids in where.items() if job.id in ids],
                        "exc": (job.exc_info or "")[-300:],
                    }
                )
        return found


def run_chaos(cfg: ChaosConfig | None = None) -> dict[str, Any]:
    return Chaos(cfg or ChaosConfig()).run()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Chaos run: faults injected, then reconciled.")
    parser.add_argument("--events", type=int, default=500)
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--seed", type=int, default=23)
    parser.add_argument("--max-time", type=float, default=240.0)
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--batch", type=int, default=1, help="events per RQ job")
    parser.add_argument(
        "--hot-store-url",
        default="",
        help="a PostgreSQL server (postgresql://...): the run's hot store is a new database on it; "
        "'auto': SGR_TEST_POSTGRES_URL, 127.0.0.1:5432, or a server of our own",
    )
    parser.add_argument(
        "--folders",
        type=int,
        default=1,
        help="data folders the workers are split among, sharing only Redis and PostgreSQL "
        "(more than 1 implies --hot-store-url auto when none is given)",
    )
    args = parser.parse_args(argv)
    if args.folders > 1 and not args.hot_store_url:
        args.hot_store_url = "auto"
    from worker.logs import configure

    configure(json_logs=True, level="WARNING")

    def config(url: str) -> ChaosConfig:
        return ChaosConfig(
            events=args.events,
            workers=args.workers,
            seed=args.seed,
            max_time_s=args.max_time,
            keep=args.keep,
            batch=args.batch,
            hot_store_url=url,
            folders=args.folders,
        )

    problem = config(
        "postgresql://" if args.hot_store_url == "auto" else args.hot_store_url
    ).problem()
    if problem:
        sys.stderr.write(f"chaos: {problem}\n")
        return 2
    if args.hot_store_url == "auto":
        with postgres_server() as url:
            report = run_chaos(config(url))
    else:
        report = run_chaos(config(args.hot_store_url))
    text = json.dumps(report) if args.json else json.dumps(report, indent=2)
    sys.stdout.write(text + "\n")
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
