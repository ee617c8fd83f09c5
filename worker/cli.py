"""The ``sgr`` command: set up data, produce events, run workers, follow offers, operate."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import redis
import typer
from rich.console import Console
from rich.table import Table

from worker.settings import Settings

app = typer.Typer(
    help="SGR Discount Manager: abandoned carts -> safe, audited discount offers.",
    no_args_is_help=True,
    add_completion=False,
)
offers_app = typer.Typer(help="Offers on the result stream.", no_args_is_help=True)
dead_app = typer.Typer(help="Events that could not be processed.", invoke_without_command=True)
codes_app = typer.Typer(help="Verify and redeem offer codes.", no_args_is_help=True)
history_app = typer.Typer(
    help="The history snapshot workers read (a copy of the cold store).", no_args_is_help=True
)
app.add_typer(offers_app, name="offers")
app.add_typer(dead_app, name="dead-letters")
app.add_typer(codes_app, name="codes")
app.add_typer(history_app, name="history")
console = Console()
err = Console(stderr=True)

DataDir = Annotated[
    Path | None, typer.Option(help="Data folder (default: SGR_DATA_DIR or ./data).")
]


def _settings(data_dir: Path | None = None, **overrides: Any) -> Settings:
    settings = Settings()
    updates = {k: v for k, v in overrides.items() if v is not None}
    if data_dir is not None:
        updates["data_dir"] = data_dir
    return settings.model_copy(update=updates) if updates else settings


def _redis(settings: Settings) -> redis.Redis:
    return redis.Redis.from_url(settings.redis_url)


@app.command("setup-data")
def setup_data(
    data_dir: DataDir = None,
    customers: Annotated[int, typer.Option(help="How many customers of history.")] = 5000,
    seed: int = 7,
) -> None:
    """Generate synthetic customer history (DuckDB), its snapshot for workers, and the hot store
    (SQLite)."""
    from producers.synthetic import customers as make_customers
    from stores.cold import summary, write_history
    from stores.history import sync_snapshot
    from stores.hot import HotStore

    settings = _settings(data_dir)
    count = write_history(settings.cold_db, make_customers(customers, seed))
    snapshot = sync_snapshot(settings.cold_db, settings.history_db)
    HotStore(settings.hot_db).close()
    console.print(f"cold store {settings.cold_db}: {count} customers {summary(settings.cold_db)}")
    console.print(f"snapshot   {snapshot.path}: {snapshot.customers} customers")
    console.print(f"hot store  {settings.hot_db}: ready")


@history_app.command("sync")
def history_sync(data_dir: DataDir = None) -> None:
    """Copy the cold store's customer features (DuckDB) into the snapshot workers read. Run it
    after the cold store changes; running workers pick up the new snapshot within a second."""
    from stores.history import sync_snapshot

    settings = _settings(data_dir)
    if not settings.cold_db.exists():
        console.print(f"[red]no cold store at {settings.cold_db}[/]: run `sgr setup-data`")
        raise typer.Exit(1)
    info = sync_snapshot(settings.cold_db, settings.history_db)
    console.print(f"snapshot {info.path}: {info.customers} customers from {info.source}")


@history_app.command("show")
def history_show(data_dir: DataDir = None) -> None:
    """When the snapshot was made, from what, and whether the cold store changed since."""
    from stores.history import snapshot_info
    from stores.timefmt import to_text

    settings = _settings(data_dir)
    info = snapshot_info(settings.history_db)
    if info is None:
        console.print(f"[red]no snapshot at {settings.history_db}[/]: run `sgr history sync`")
        raise typer.Exit(1)
    console.print(
        {
            "snapshot": str(info.path),
            "customers": info.customers,
            "synced_at": to_text(info.synced_at),
            "source": info.source,
            "stale": info.stale(),
            "workers_read": settings.history_source,
        }
    )


@app.command()
def produce(
    file: Annotated[
        Path | None, typer.Option(help="JSON-lines file of events ('-' = stdin).")
    ] = None,
    synthetic: Annotated[int, typer.Option(help="Synthetic sessions to generate.")] = 0,
    seed: int = 11,
    queue: Annotated[str | None, typer.Option(help="Queue name (default SGR_QUEUE).")] = None,
    no_validate: Annotated[bool, typer.Option(help="Send payloads unchecked.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Push cart events onto the RQ queue (bulk enqueue); invalid events are reported, not sent."""
    from rq import Queue

    from producers.enqueue import enqueue_events
    from producers.synthetic import StreamConfig, event_stream

    settings = _settings(queue=queue)
    events: list[Any] = []
    if file is not None:
        stream = sys.stdin if str(file) == "-" else file.open(encoding="utf-8")
        for number, line in enumerate(stream, 1):
            if line.strip():
                try:
                    events.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    err.print(f"line {number}: not JSON ({exc.msg})")
    if synthetic:
        events.extend(event_stream(StreamConfig(sessions=synthetic, seed=seed)))
    q = Queue(settings.queue, connection=_redis(settings))
    report = enqueue_events(
        q,
        events,
        max_attempts=settings.max_attempts,
        job_timeout=settings.job_timeout_s,
        validate=not no_validate,
    )
    for position, error in report.rejected:
        err.print(f"[red]rejected[/red] event #{position}: {error}")
    result = {
        "queue": settings.queue,
        "enqueued": len(report.accepted),
        "rejected": len(report.rejected),
    }
    console.print_json(json.dumps(result)) if as_json else console.print(result)


@app.command()
def worker(
    burst: Annotated[bool, typer.Option(help="Stop when the queue is empty.")] = False,
    queue: Annotated[str | None, typer.Option(help="Queue name (default SGR_QUEUE).")] = None,
    max_jobs: Annotated[int | None, typer.Option(help="Stop after this many jobs.")] = None,
) -> None:
    """Run one worker process (rq's SimpleWorker) on the queue. Same as
    `rq worker -w rq.worker.SimpleWorker cart-events`."""
    from rq import Queue, SimpleWorker

    from worker.jobs import current_runtime

    settings = _settings(queue=queue)
    current_runtime()  # open stores and engine before the first job
    conn = _redis(settings)
    SimpleWorker([Queue(settings.queue, connection=conn)], connection=conn).work(
        burst=burst, max_jobs=max_jobs, with_scheduler=True
    )


@app.command()
def demo(
    data_dir: DataDir = None,
    sessions: Annotated[int, typer.Option(help="Synthetic cart sessions.")] = 120,
    llm_url: Annotated[str | None, typer.Option(help="OpenAI-compatible URL, e.g. vLLM.")] = None,
    engine: Annotated[str | None, typer.Option(help="auto, vllm or policy.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="End with the summary as JSON.")] = False,
) -> None:
    """Seed, push a few hundred events, drain them with a worker, show offers and a summary."""
    from worker.demo import run_demo
    from worker.logs import configure

    configure(json_logs=True, level="CRITICAL")
    if llm_url and engine is None:
        engine = "vllm"
    settings = _settings(data_dir, llm_url=llm_url, engine=engine)
    result = run_demo(settings, sessions=sessions)
    table = Table(title="Sample offers", show_lines=True)
    for column in (
        "customer",
        "cart",
        "segment",
        "cap %",
        "offer %",
        "engine",
        "reasoning",
        "message",
    ):
        table.add_column(column, overflow="fold")
    for o in result.samples:
        pricing = o["reasoning"]["pricing"]
        table.add_row(
            o["user_id"],
            f"{o['cart_value']:.2f} {o['currency']}",
            o["segment"],
            f"{o['cap_pct']:g}",
            f"{o['discount_pct']:g}",
            o["engine"],
            f"{pricing['churn_analysis']}\n{pricing['margin_math']}"[:300],
            o["message"],
        )
    out = Console(stderr=True) if as_json else console
    out.print(table)
    out.print(result.summary)
    if as_json:
        print(json.dumps(result.summary, default=str))


@offers_app.command("tail")
def offers_tail(
    count: Annotated[int, typer.Option(help="Stop after this many offers (0 = follow).")] = 0,
    from_start: Annotated[bool, typer.Option(help="Start at the oldest offer.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
) -> None:
    """Follow the offers stream live."""
    settings = _settings()
    conn = _redis(settings)
    last, seen = ("0-0" if from_start else "$"), 0
    try:
        while count == 0 or seen < count:
            reply: Any = conn.xread({settings.offers_stream: last}, block=5000, count=100)
            for _stream, entries in reply or []:
                for entry_id, fields in entries:
                    last = entry_id
                    offer = {k.decode(): v.decode() for k, v in fields.items()}
                    seen += 1
                    if as_json:
                        print(json.dumps(offer))
                    else:
                        console.print(
                            f"[bold]{offer['discount_pct']}%[/bold] (cap "
                            f"{offer['cap_pct']}%) {offer['user_id']} {offer['code']} "
                            f"\\[{offer['engine']}]"
                        )
                    if count and seen >= count:
                        return
    except KeyboardInterrupt:
        pass


@dead_app.callback()
def dead_letters(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option(help="How many to list.")] = 50,
) -> None:
    """List dead letters (events that failed, with their error)."""
    if ctx.invoked_subcommand is not None:
        return
    from worker.deadletter import DeadLetters

    settings = _settings()
    letters = DeadLetters(_redis(settings), settings.dead_letter_key)
    console.print(f"{letters.count()} dead letter(s) in {settings.dead_letter_key}")
    for letter in letters.list(limit):
        console.print(
            f"[red]{letter.event_id}[/red] {letter.at} job={letter.job_id}\n  {letter.error}"
        )


@dead_app.command("requeue")
def dead_letters_requeue(
    event_id: Annotated[list[str] | None, typer.Argument(help="Event ids (default: all).")] = None,
    data_dir: DataDir = None,
) -> None:
    """Requeue dead letters after a fix (their dead-letter outcome is cleared first)."""
    from rq import Queue

    from producers.enqueue import enqueue_events
    from stores.hot import HotStore
    from worker.deadletter import DeadLetters

    settings = _settings(data_dir)
    conn = _redis(settings)
    letters = DeadLetters(conn, settings.dead_letter_key)
    hot = HotStore(settings.hot_db)
    queue = Queue(settings.queue, connection=conn)
    done = 0
    for letter in letters.list(10_000):
        if event_id and letter.event_id not in event_id:
            continue
        if isinstance(letter.payload, dict) and letter.payload.get("truncated"):
            err.print(f"{letter.event_id}: payload was truncated when stored; cannot requeue")
            continue
        hot.forget_dead_letter(letter.event_id)
        enqueue_events(queue, [letter.payload], validate=False, max_attempts=settings.max_attempts)
        letters.remove(letter)
        done += 1
    console.print(f"requeued {done} event(s) onto {settings.queue}")


@codes_app.command("verify")
def codes_verify(code: str) -> None:
    """Check that an offer code is genuine and unexpired."""
    from worker.codes import CodeSigner, InvalidCode

    settings = _settings()
    try:
        info = CodeSigner(settings.code_secret.get_secret_value().encode()).verify(
            code, datetime.now(UTC)
        )
    except InvalidCode as exc:
        err.print(f"[red]invalid[/red]: {exc}")
        raise typer.Exit(1) from None
    console.print(f"valid: offer {info.offer_id}, {info.discount_pct:g}% until {info.expires_at}")


@codes_app.command("redeem")
def codes_redeem(code: str, data_dir: DataDir = None) -> None:
    """Verify a code and mark its offer redeemed (a code works once)."""
    from stores.hot import HotStore
    from worker.codes import CodeSigner, InvalidCode

    settings = _settings(data_dir)
    now = datetime.now(UTC)
    try:
        info = CodeSigner(settings.code_secret.get_secret_value().encode()).verify(code, now)
    except InvalidCode as exc:
        err.print(f"[red]invalid[/red]: {exc}")
        raise typer.Exit(1) from None
    if not HotStore(settings.hot_db).redeem(info.offer_id, now):
        err.print(f"[red]refused[/red]: offer {info.offer_id} unknown or already redeemed")
        raise typer.Exit(1)
    console.print(f"redeemed offer {info.offer_id}: {info.discount_pct:g}% off")


@app.command()
def reap(
    data_dir: DataDir = None,
    loop: Annotated[
        bool, typer.Option(help="Keep reaping (a sidecar), every --interval s.")
    ] = False,
    interval: Annotated[float, typer.Option(help="Seconds between passes with --loop.")] = 5.0,
) -> None:
    """Re-run jobs of dead workers, dead-letter those out of attempts, flush the outbox."""
    from worker.jobs import build_runtime
    from worker.logs import configure
    from worker.reaper import reaper_for, run_forever, stats

    configure(json_logs=True, level="WARNING")
    settings = _settings(data_dir, engine="policy", reap_interval_s=0)
    reaper = reaper_for(build_runtime(settings))  # the engine is not used by the reaper
    if loop:
        run_forever(reaper, interval)
        return
    report = reaper.reap()
    console.print_json(json.dumps({**report.as_dict(), "totals": stats(reaper.client)}))


@app.command()
def chaos(
    events: Annotated[int, typer.Option(help="Events to push (with faults among them).")] = 500,
    workers: Annotated[int, typer.Option(help="rq worker processes.")] = 3,
    seed: int = 23,
    max_time: Annotated[float, typer.Option(help="Overall time bound in seconds.")] = 240.0,
    keep: Annotated[bool, typer.Option(help="Keep the temporary folder (logs, stores).")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Fault-injection run on its own redis-server, stand-in LLM and workers, then reconcile:
    lost, duplicate_offers and published_mismatch must be 0. Exit 1 otherwise."""
    from producers.chaos import ChaosConfig, run_chaos
    from worker.logs import configure

    configure(json_logs=True, level="WARNING")
    report = run_chaos(
        ChaosConfig(events=events, workers=workers, seed=seed, max_time_s=max_time, keep=keep)
    )
    if as_json:
        print(json.dumps(report))
    else:
        console.print_json(json.dumps(report))
    if not report["ok"]:
        raise typer.Exit(1)


@app.command()
def status(data_dir: DataDir = None) -> None:
    """Queue depth, outcomes so far, the stream length and the history snapshot's age."""
    from rq import Queue

    from stores.history import snapshot_info
    from stores.hot import HotStore
    from stores.timefmt import to_text

    settings = _settings(data_dir)
    conn = _redis(settings)
    queue = Queue(settings.queue, connection=conn)
    hot = HotStore(settings.hot_db)
    snapshot = snapshot_info(settings.history_db)
    console.print(
        {
            "queue": settings.queue,
            "queued": queue.count,
            "failed": queue.failed_job_registry.count,
            "stream": int(conn.xlen(settings.offers_stream)),  # type: ignore[arg-type]
            **hot.summary(),
            "history_snapshot": None
            if snapshot is None
            else {"synced_at": to_text(snapshot.synced_at), "stale": snapshot.stale()},
        }
    )


# Load testing: thin wrappers; each tool parses its own options (`sgr loadgen --help`).
_PASS_THROUGH = {"allow_extra_args": True, "ignore_unknown_options": True}


@app.command(context_settings=_PASS_THROUGH, add_help_option=False)
def loadgen(ctx: typer.Context) -> None:
    """Open-loop load at a target rate (mix, bursts, live display); --replay FILE pushes recorded
    events at their pace. Options: sgr loadgen --help."""
    from producers.loadgen import app as loadgen_app

    loadgen_app(args=ctx.args, prog_name="sgr loadgen")


@app.command(context_settings=_PASS_THROUGH, add_help_option=False)
def report(ctx: typer.Context) -> None:
    """A run's throughput, latency percentiles, time per stage, errors and fallbacks (--json,
    --plot FILE.png). Options: sgr report --help."""
    from producers.collector import app as collector_app

    collector_app(args=ctx.args, prog_name="sgr report")


@app.command(context_settings=_PASS_THROUGH, add_help_option=False)
def bench(ctx: typer.Context) -> None:
    """The pipeline beside RQ's floor, a fixed-latency LLM edge and vLLM, in one run (--quick,
    --json). Options: sgr bench --help."""
    from producers.bench import main as bench_main

    bench_main(ctx.args)


if __name__ == "__main__":
    app()
