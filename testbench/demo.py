"""``sgr demo``: seed a data folder of its own, push a few hundred synthetic events under a Redis
namespace of its own, drain the queue with a worker, and summarise what came out.

It never touches a Redis it did not start: it runs a ``redis-server`` of its own on a free
loopback port (stopped, its files removed, at the end), or an in-process fakeredis where no
``redis-server`` is installed. ``SGR_REDIS_URL`` is not read; only an explicit ``--redis-url``
makes it use another Redis (and then only keys under ``sgr-demo``).

The demo never touches real data: its folder (``./demo-data`` by default) carries a marker file,
and a folder without that marker that already holds stores is refused unless ``--force``. Its
queue, stream, channel, dead letters and internal keys all live under ``sgr-demo``, so its offers
never reach the real stream, and its runtime runs no reaper.
"""

from __future__ import annotations

import random
import shutil
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import redis
from pydantic import SecretStr
from rq import Queue, SimpleWorker

from producers.enqueue import enqueue_events
from producers.synthetic import StreamConfig, World, customers, event_stream, order_event
from stores.cold import write_history
from stores.sync import sync_snapshot
from testbench.redisproc import RedisServer
from worker.domain.lift import segment_of
from worker.keys import Keys
from worker.liftreport import lift_report, table
from worker.runtime import Runtime, build_runtime, install, size_llm_timeout
from worker.settings import Settings, redact_url

BAD_EVENTS: list[Any] = [
    {
        "event_id": "bad-currency",
        "type": "cart_abandoned",
        "occurred_at": "2026-01-01T00:00:00Z",
        "user_id": "u000001",
        "session_id": "s-bad",
        "cart": {"currency": "euro", "value": 50, "margin": 0.3},
    },
    {
        "event_id": "bad-margin",
        "type": "cart_abandoned",
        "occurred_at": "2026-01-01T00:00:00Z",
        "user_id": "u000001",
        "session_id": "s-bad",
        "cart": {"currency": "EUR", "value": 50, "margin": 1.7},
    },
    {
        "event_id": "bad-type",
        "type": "cart_exploded",
        "occurred_at": "2026-01-01T00:00:00Z",
        "user_id": "u000001",
        "session_id": "s-bad",
    },
]


@dataclass
class DemoResult:
    summary: dict[str, Any]
    samples: list[dict[str, Any]]


@dataclass(frozen=True)
class DemoRedis:
    client: redis.Redis
    url: str | None  # None: in-process fakeredis
    where: str  # what the summary says (credentials redacted)


@contextmanager
def demo_redis(explicit_url: str | None = None) -> Iterator[DemoRedis]:
    """The demo's Redis: ``explicit_url`` (it must answer), else a redis-server of the demo's own
    (stopped and removed on the way out), else in-process fakeredis. Never ``SGR_REDIS_URL``."""
    if explicit_url:
        where = redact_url(explicit_url)
        client = redis.Redis.from_url(explicit_url, socket_connect_timeout=2, socket_timeout=10)
        try:
            client.ping()
        except redis.RedisError as exc:
            raise DemoRefused(f"cannot reach Redis at {where} (--redis-url): {exc}") from None
        yield DemoRedis(client, explicit_url, f"{where} (--redis-url; keys under {NAMESPACE})")
        return
    if shutil.which("redis-server") is not None:
        with RedisServer() as server:
            client = redis.Redis.from_url(server.url)
            try:
                yield DemoRedis(
                    client, server.url, f"a redis-server of its own ({server.url}, now stopped)"
                )
            finally:
                client.close()
        return
    import fakeredis

    yield DemoRedis(fakeredis.FakeRedis(), None, "fakeredis (in-process; no redis-server here)")


DEMO_DIR = Path("demo-data")
MARKER = ".sgr-demo"
NAMESPACE = "sgr-demo"
STORE_FILES = ("hot.sqlite", "hot.sqlite-wal", "hot.sqlite-shm", "cold.duckdb", "history.sqlite")


class DemoRefused(RuntimeError):
    pass


def prepare_folder(folder: Path, force: bool) -> None:
    """Make ``folder`` the demo's: a folder holding stores but no demo marker is refused unless
    ``force``; the demo's own stores from an earlier run are replaced."""
    has_stores = any((folder / name).exists() for name in STORE_FILES)
    if has_stores and not (folder / MARKER).exists() and not force:
        raise DemoRefused(
            f"{folder} holds stores that are not the demo's: the demo would replace them. "
            "Use another --data-dir (the default is ./demo-data), or --force"
        )
    folder.mkdir(parents=True, exist_ok=True)
    for name in STORE_FILES:
        (folder / name).unlink(missing_ok=True)
    (folder / MARKER).write_text("made by `sgr demo`; its stores are replaced on each run\n")


def demo_settings(settings: Settings, folder: Path, redis_url: str | None = None) -> Settings:
    """The demo's settings: its folder, its namespace, its Redis (an unreachable placeholder for
    fakeredis, so that nothing can reach the user's SGR_REDIS_URL)."""
    return settings.model_copy(
        update={
            "redis_url": redis_url or "redis://127.0.0.1:1/0",
            "data_dir": folder,
            "hot_store_url": SecretStr(""),
            "queue": NAMESPACE,
            "offers_stream": f"{NAMESPACE}:offers",
            "offers_channel": f"{NAMESPACE}:offers:live",
            "dead_letter_key": f"{NAMESPACE}:dead-letters",
            "key_prefix": NAMESPACE,
            "reap_interval_s": 0,
            # a holdout experiment of its own, so the demo ends with the lift report
            "holdout_pct": settings.holdout_pct or DEMO_HOLDOUT_PCT,
            "experiment_salt": settings.experiment_salt
            if settings.holdout_pct
            else SecretStr(DEMO_SALT),
            "offer_delay_minutes": 0,  # the demo shows decisions at once (docs/recovery.md)
            "quiet_hours": "",
        }
    )


DEMO_HOLDOUT_PCT = 20.0
DEMO_SALT = "sgr-demo-experiment"


def simulate_orders(runtime: Runtime, world: World, seed: int = 5) -> list[dict[str, Any]]:
    """The simulated world's customers decide whether to order after their eligible abandonment
    (more often with a larger share of the cap offered); a treated customer who orders uses the
    code (``order.code``: redeemed with the order). The orders come back as ``order_completed``
    events, attributed as a shop's are."""
    rng = random.Random(seed)
    hot, now = runtime.deps.hot, runtime.deps.clock()
    orders = []
    for cart in hot.eligible_carts(runtime.deps.experiment.id):
        segment = segment_of(cart["segment"])
        if not world.orders(rng, segment, float(cart["offered_pct"]), float(cart["cap_pct"])):
            continue
        order = order_event(
            cart["user_id"], cart["session_id"], now, float(cart["cart_value"]),
            cart["currency"], rng,
        )  # fmt: skip
        if cart["code"]:  # the treated customer orders with the code
            order["order"] = {"order_id": f"o-{order['event_id']}", "code": cart["code"]}
        orders.append(order)
    return orders


DEMO_BATCH = 50  # events per RQ job


def run_demo(
    settings: Settings,
    sessions: int = 120,
    customers_count: int = 5000,
    data_dir: Path | None = None,
    force: bool = False,
    redis_url: str | None = None,
) -> DemoResult:
    """The demo, on its own folder and its own Redis (``redis_url``: that one instead)."""
    folder = data_dir or DEMO_DIR
    prepare_folder(folder, force)
    with demo_redis(redis_url) as own:
        return _run(demo_settings(settings, folder, own.url), own, sessions, customers_count)


def _run(settings: Settings, own: DemoRedis, sessions: int, customers_count: int) -> DemoResult:
    folder, client, where = settings.data_dir, own.client, own.where
    write_history(settings.cold_db, customers(customers_count))
    sync_snapshot(settings.cold_db, settings.history_db)
    keys = Keys.from_settings(settings)
    client.delete(keys.rq_queue_list, keys.offers_stream, keys.dead_letters, keys.store_failures)
    runtime = install(build_runtime(settings, client, create_store=True))
    sized = size_llm_timeout(runtime)  # the deadline from the server's measured speed
    queue = Queue(settings.queue, connection=client)
    events = list(event_stream(StreamConfig(sessions=sessions, known_customers=customers_count)))
    # Batch jobs: a batch sends its eligible carts to the LLM at once (SGR_LLM_CONCURRENCY), so a
    # real model's answers are computed side by side instead of one after another.
    report = enqueue_events(
        queue, events, max_attempts=settings.max_attempts, batch_size=DEMO_BATCH, job_timeout=600
    )
    bad = enqueue_events(queue, BAD_EVENTS, validate=False, max_attempts=1)
    SimpleWorker([queue], connection=client).work(burst=True, logging_level="CRITICAL")
    orders = simulate_orders(runtime, World())
    enqueue_events(queue, orders, max_attempts=settings.max_attempts, batch_size=DEMO_BATCH)
    SimpleWorker([queue], connection=client).work(burst=True, logging_level="CRITICAL")

    hot = runtime.deps.hot
    figures = hot.summary()
    largest = hot.largest_offer()
    engines = hot.offers_by_engine()
    asked_llm = runtime.deps.engine.name == "vllm"
    summary: dict[str, Any] = {
        "events": len(report.accepted) + len(bad.accepted) + len(orders),
        "recorded": figures["events"],
        "offers": figures["offers"],
        "no_offer": {r: n for o, r, n in hot.outcome_counts() if o == "no_offer"},
        "dead_letter": figures["dead_letter"],
        "engine": runtime.deps.engine.name,
        "offers_by_engine": engines,
        "llm_answers": figures["engine_asked"] if asked_llm else 0,
        "schema_valid": (figures["engine_asked"] - figures["engine_failed"]) if asked_llm else 0,
        "guardrail_interventions": figures["guardrail_interventions"],
        "bound_interventions": figures["bound_interventions"],
        "largest_discount_pct": largest["discount_pct"] if largest else None,
        "its_cap_pct": largest["cap_pct"] if largest else None,
        "over_cap": figures["over_cap"],
        # offer entries (the stream also carries void notices: an order closed an offer)
        "published": sum(
            1
            for _id, f in cast(list[Any], client.xrange(keys.offers_stream))
            if f.get(b"type", b"offer") == b"offer"
        ),
        "voided": sum(
            1
            for _id, f in cast(list[Any], client.xrange(keys.offers_stream))
            if f.get(b"type") == b"void"
        ),
        "stream": keys.offers_stream,
        "unpublished": figures["unpublished"],
        "redis": where,
        "data_dir": str(folder),
        "llm_warmup_s": sized["warmup_s"] if sized else None,
        "llm_timeout_s": sized["timeout_s"] if sized else None,
        "simulated_orders": len(orders),
        "lift": lift_report(hot, runtime.deps.experiment),
    }
    reasons = hot.rules_engine_reasons()
    summary["rules_engine_note"] = rules_engine_note(
        runtime.deps.engine.name, figures["offers"], reasons, sized
    )
    return DemoResult(summary, hot.sample_offers())


WHY = {  # the first problem recorded with an offer, in words (worker/handlers/cart.py names them)
    "engine_timeout": "the model did not answer in time",
    "engine_circuit_open": "the model failed several times in a row, so it was skipped for a while",
    "engine_connection": "the model's server could not be reached",
    "engine_server_error": "the model's server answered with an error",
    "engine_invalid_output": "the model's answer did not fit the schema",
    "engine_length": "the model's answer was cut off",
    "message_": "the model's sentence failed the message checks",
    "discount_": "the model's discount broke a rule",
}


def rules_engine_note(
    engine: str, offers: int, reasons: list[str | None], sized: dict[str, Any] | None
) -> str | None:
    """One plain sentence when offers came from the rules engine, with the reason; None when the
    model wrote them all."""
    if not reasons:
        return None
    if engine == "policy":
        return (
            f"All {offers} offers came from the rules engine, because no model was used "
            "(no LLM server answered, or the rules engine was asked for)."
        )
    why: Counter[str] = Counter()
    for error in reasons:
        first = (error or "").split(";")[0].strip()
        words = next((text for key, text in WHY.items() if first.startswith(key)), None)
        why[words or "the model's answer was refused by the rules"] += 1
    main, _ = why.most_common(1)[0]
    note = f"{len(reasons)} of {offers} offers came from the rules engine, mostly because {main}"
    if sized and sized.get("timeout_s"):
        note += f" (the model had {sized['timeout_s']:g} s per answer)"
    return note + "."


def print_demo(result: DemoResult, to_stderr: bool = False) -> None:
    """The sample offers, one block each (readable in any terminal width), then the summary."""
    import textwrap

    from rich.console import Console

    console = Console(stderr=to_stderr, highlight=False)
    width = max(console.width, 40)

    def field(label: str, text: str) -> None:
        indent = " " * 13
        lines = text.splitlines() or [""]
        for n, line in enumerate(lines):
            first = f"  {label + ':':<11}" if n == 0 else indent
            wrapped = textwrap.fill(line, width, initial_indent=first, subsequent_indent=indent)
            console.print(wrapped, markup=False)

    console.rule("Sample offers")
    for o in result.samples:
        pricing = o["reasoning"]["pricing"]
        reasoning = " | ".join(
            str(v) for k, v in pricing.items() if isinstance(v, str) and k != "customer_message"
        )
        head = (
            f"{o['user_id']}  {o['cart_value']:.2f} {o['currency']}  {o['segment']}  "
            f"cap {o['cap_pct']:g}%  offer {o['discount_pct']:g}%  {o['engine']}"
        )
        console.print(head, markup=False, style="bold")
        field("reasoning", textwrap.shorten(reasoning, 300, placeholder=" ..."))
        field("message", o["message"])
    console.rule()
    console.print({k: v for k, v in result.summary.items() if k != "lift"})
    note = result.summary.get("rules_engine_note")
    if note:
        console.print(note, markup=False, style="bold")
    console.rule("Does the discount pay? (sgr report lift; docs/lift.md)")
    console.print(table(result.summary["lift"]), markup=False)
