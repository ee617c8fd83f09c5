"""``sgr`` commands for operators: run workers and the reaper, watch the fleet, follow offers,
handle dead letters and redeem codes."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from worker.cli.app import DataDir, app, fail, out, redis_client, settings

offers_app = typer.Typer(
    help="Offers on the result stream.", no_args_is_help=True, rich_markup_mode=None
)
dead_app = typer.Typer(
    help="Events that could not be processed.", invoke_without_command=True, rich_markup_mode=None
)
codes_app = typer.Typer(
    help="Check and redeem offer codes.", no_args_is_help=True, rich_markup_mode=None
)
app.add_typer(offers_app, name="offers")
app.add_typer(dead_app, name="dead-letters")
app.add_typer(codes_app, name="codes")


@app.command()
def worker(
    burst: Annotated[bool, typer.Option(help="Stop when the queue is empty.")] = False,
    queue: Annotated[str | None, typer.Option(help="Queue name (default SGR_QUEUE).")] = None,
    max_jobs: Annotated[int | None, typer.Option(help="Stop after this many jobs.")] = None,
) -> None:
    """Run one worker process (RQ's SimpleWorker, made safe: worker/safejob.py) on the queue.
    Same as `rq worker -w worker.safejob.SafeWorker --url $SGR_REDIS_URL cart-events`, with the
    settings checked, the stores opened and the Redis connection tried before the first job. Only
    the project's job functions run; poison items are moved aside. No RQ scheduler process is
    started: retries are requeued at once and need none (and a scheduler child would outlive a
    worker killed by a signal, holding the stores open)."""
    from stores.base import StoreTransient
    from worker.jobs import start_process
    from worker.safejob import FATAL_EXIT_STATUS, SafeQueue, SafeWorker

    s = settings(queue=queue)
    try:
        runtime = start_process(s)
    except StoreTransient as exc:  # not now: the supervisor starts it again (Restart=on-failure)
        fail(str(exc), code=FATAL_EXIT_STATUS)
    runtime.client.ping()
    SafeWorker([SafeQueue(s.queue, connection=runtime.client)], connection=runtime.client).work(
        burst=burst, max_jobs=max_jobs, with_scheduler=False
    )


@app.command()
def reap(
    data_dir: DataDir = None,
    loop: Annotated[
        bool, typer.Option(help="Keep reaping (a sidecar), every --interval s.")
    ] = False,
    interval: Annotated[float, typer.Option(help="Seconds between passes with --loop.")] = 5.0,
) -> None:
    """Re-run jobs of dead workers, dead-letter those out of attempts, flush the outbox."""
    from worker.logs import configure
    from worker.reaper import reaper_for, run_forever, stats
    from worker.runtime import build_runtime

    configure(json_logs=True, level="WARNING")
    s = settings(data_dir, engine="policy", reap_interval_s=0)
    reaper = reaper_for(build_runtime(s))  # the engine is not used by the reaper
    if loop:
        run_forever(reaper, interval)
        return
    report = reaper.reap()
    print(json.dumps({**report.as_dict(), "totals": stats(reaper.client, reaper.runtime.keys)}))


def status_figures(data_dir: Path | None = None) -> dict[str, Any]:
    """What `sgr status` prints: queue, registries, stream, outcomes, dead letters, snapshot."""
    from rq import Queue

    from stores.history import snapshot_info
    from worker.deadletter import DeadLetters
    from worker.domain.timefmt import to_text
    from worker.keys import Keys
    from worker.runtime import open_store
    from worker.schedule import DueSet
    from worker.settings import redact_url

    s = settings(data_dir)
    hot = open_store(s)  # first: a data folder that is not there is said before Redis is asked
    try:
        figures = hot.summary()
        unpublished = len(hot.unpublished_outcomes(100_000))
    finally:
        hot.close()
    keys = Keys.from_settings(s)
    conn = redis_client(s)
    queue = Queue(s.queue, connection=conn)
    letters = DeadLetters(conn, keys.dead_letters, keys.store_failures)
    due = DueSet(conn, keys)
    soonest = due.next_due()
    snapshot = snapshot_info(s.history_db)
    return {
        "redis": redact_url(s.redis_url),
        "queue": s.queue,
        "queued": queue.count,
        "running": queue.started_job_registry.count,
        "failed_jobs": queue.failed_job_registry.count,
        "stream": int(conn.xlen(s.offers_stream)),  # type: ignore[arg-type]
        "outcome_stream": int(conn.xlen(keys.outcomes_stream)),  # type: ignore[arg-type]
        "outcomes_unpublished": unpublished,  # recorded, not yet on the outcome stream
        **figures,
        "due_set": due.size(),  # scheduled decisions waiting in Redis (the hot store: scheduled)
        "next_due": None if soonest is None else to_text(datetime.fromtimestamp(soonest, UTC)),
        "dead_letter_list": letters.count(),
        "store_failures": letters.store_failures(),
        "history_snapshot": None
        if snapshot is None
        else {"synced_at": to_text(snapshot.synced_at), "stale": snapshot.stale()},
    }


def event_outcome(event_id: str, data_dir: Path | None = None) -> dict[str, Any] | None:
    """One event's recorded outcome as `sgr status --event` shows it (None: none recorded)."""
    from dataclasses import asdict

    from worker.domain.timefmt import to_text
    from worker.runtime import open_store

    hot = open_store(settings(data_dir))
    try:
        found = hot.get_outcome(event_id)
    finally:
        hot.close()
    if found is None:
        return None
    return {k: to_text(v) if isinstance(v, datetime) else v for k, v in asdict(found).items()}


@app.command()
def status(
    data_dir: DataDir = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    event: Annotated[
        str | None, typer.Option("--event", help="One event's outcome (`scheduled`: its due_at).")
    ] = None,
) -> None:
    """Queue depth, outcomes so far (`scheduled`: decisions waiting, docs/recovery.md), dead
    letters, the streams' lengths and the snapshot's age. `outcomes_unpublished`: outcomes
    recorded and not yet on the outcome stream (the reaper publishes them); `dead_letter` counts
    those the hot store recorded; `dead_letter_list` those in the Redis list; `store_failures`
    those that reached only the list because the store failed. `--event ID`: that event's outcome
    alone."""
    if event is not None:
        found = event_outcome(event, data_dir)
        if found is None:
            fail(f"no outcome recorded for event {event!r}")
        print(json.dumps(found)) if as_json else out(found)
        return
    figures = status_figures(data_dir)
    print(json.dumps(figures)) if as_json else out(figures)


@offers_app.command("tail")
def offers_tail(
    count: Annotated[int, typer.Option(help="Stop after this many offers (0 = follow).")] = 0,
    from_start: Annotated[bool, typer.Option(help="Start at the oldest offer.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
) -> None:
    """Follow the offers stream live."""
    s = settings()
    conn = redis_client(s)
    conn.ping()
    last, seen = ("0-0" if from_start else "$"), 0
    try:
        while count == 0 or seen < count:
            reply: Any = conn.xread({s.offers_stream: last}, block=5000, count=100)
            for _stream, entries in reply or []:
                for entry_id, fields in entries:
                    last = entry_id
                    offer = {k.decode(): v.decode() for k, v in fields.items()}
                    seen += 1
                    if as_json:
                        print(json.dumps(offer))
                    elif offer.get("type") == "void":  # an order closed this offer
                        out(
                            f"void {offer.get('user_id', '')} {offer.get('code', '')} "
                            f"({offer.get('reason', '')})"
                        )
                    else:
                        cap = f" (cap {offer['cap_pct']}%)" if offer.get("cap_pct") else ""
                        out(
                            f"[bold]{offer.get('discount_pct', '')}%[/bold]{cap} "
                            f"{offer.get('user_id', '')} {offer.get('code', '')} "
                            f"\\[{offer.get('engine', '')}]"
                        )
                    if count and seen >= count:
                        return
    except KeyboardInterrupt:
        pass


@dead_app.callback()
def dead_letters(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option(help="How many to list.")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
) -> None:
    """List dead letters (events that failed, with their error)."""
    if ctx.invoked_subcommand is not None:
        return
    from worker.deadletter import DeadLetters

    s = settings()
    letters = DeadLetters(redis_client(s), s.dead_letter_key)
    listed = letters.list(limit)
    if as_json:
        for letter in listed:
            print(letter.to_json())
        return
    out(f"{letters.count()} dead letter(s) in {s.dead_letter_key}")
    for letter in listed:
        flag = " [yellow](hot store failed)[/]" if letter.store_failed else ""
        out(f"[red]{letter.event_id}[/red] {letter.at} job={letter.job_id}{flag}\n  {letter.error}")


@dead_app.command("requeue")
def dead_letters_requeue(
    event_id: Annotated[list[str] | None, typer.Argument(help="Event ids (default: all).")] = None,
    payload: Annotated[
        Path | None,
        typer.Option(help="A corrected event (JSON file) to send instead of the stored payload."),
    ] = None,
    data_dir: DataDir = None,
) -> None:
    """Requeue dead letters after a fix (their dead-letter outcome is cleared first). With
    --payload FILE, one dead letter is replaced by the corrected event in FILE (same event_id)."""
    from rq import Queue

    from producers.enqueue import enqueue_events
    from worker.deadletter import DeadLetters
    from worker.domain.events import InvalidEvent, parse_event
    from worker.runtime import open_store

    s = settings(data_dir)
    conn = redis_client(s)
    letters = DeadLetters(conn, s.dead_letter_key)
    replacement: Any = None
    if payload is not None:
        if not event_id or len(event_id) != 1:
            fail("--payload replaces one dead letter: give exactly one event id")
        try:
            replacement = json.loads(payload.read_text(encoding="utf-8"))
        except OSError as exc:
            fail(f"cannot read {payload}: {exc.strerror or exc}")
        except json.JSONDecodeError as exc:
            fail(f"{payload}: not JSON ({exc.msg} at line {exc.lineno})")
        try:
            event = parse_event(replacement)
        except InvalidEvent as exc:
            fail(f"{payload}: {exc}")
        if event.event_id != event_id[0]:
            fail(f"{payload}: event_id {event.event_id!r} is not the dead letter's {event_id[0]!r}")
    hot = open_store(s)
    queue = Queue(s.queue, connection=conn)
    done = 0
    for letter in letters.list(100_000):
        if event_id and letter.event_id not in event_id:
            continue
        body = replacement if replacement is not None else letter.payload
        if isinstance(body, dict) and body.get("truncated"):
            print(f"{letter.event_id}: payload was truncated when stored; use --payload FILE")
            continue
        hot.forget_dead_letter(letter.event_id)
        enqueue_events(
            queue,
            [body],
            validate=False,
            **s.job_options(),
        )
        letters.remove(letter)
        done += 1
    hot.close()
    if event_id and done == 0:
        fail(f"no dead letter with event id {', '.join(event_id)}")
    out(f"requeued {done} event(s) onto {s.queue}")


# Exit statuses of `sgr codes`: 1 malformed code (or a usage error), then one per InvalidCode kind
# (worker/redemption.py's KINDS: 2 unknown, 3 redeemed, 4 expired, 5 voided, 6 not_yours, ...).
CODE_EXIT = {kind: n for n, kind in enumerate(
    ("malformed", "unknown", "redeemed", "expired", "voided", "not_yours", "currency_mismatch",
     "order_used"), start=1)}  # fmt: skip

UserOption = Annotated[
    str | None,
    typer.Option("--user", help="The customer redeeming: another customer's code is refused."),
]
JsonOption = Annotated[bool, typer.Option("--json", help="One JSON object on stdout.")]


def _code_failed(exc: Any, as_json: bool = False, code: str | None = None) -> NoReturn:
    """End a `sgr codes` command on an InvalidCode: one line on stderr (or one JSON object on
    stdout with ``--json``, as the HTTP API's answer) and the exit status of its kind."""
    from worker.redemption import failure_json

    if as_json:
        print(json.dumps(failure_json(exc, code)))
        raise typer.Exit(CODE_EXIT[exc.kind])
    fail(f"{'invalid' if exc.kind == 'malformed' else exc.kind}: {exc}", code=CODE_EXIT[exc.kind])


def _code_answer(
    action: str, code: str, user: str | None, as_json: bool, data_dir: Path | None
) -> Any:
    """The answer of worker/redemption.py's verify_code or redeem_code (the API's too), or the
    command ended on its refusal."""
    from datetime import UTC, datetime

    from worker.domain.codes import InvalidCode
    from worker.redemption import canonical, redeem_code, verify_code

    if user is not None and (not user or user != user.strip()):
        _code_failed(InvalidCode(f"--user must be a customer id as sent, got {user!r}"), as_json)
    try:
        text = canonical(code)
    except InvalidCode as exc:
        _code_failed(exc, as_json)
    from worker.runtime import open_store

    hot = open_store(settings(data_dir))
    run = redeem_code if action == "redeem" else verify_code
    try:
        return run(hot, text, user, datetime.now(UTC))
    except InvalidCode as exc:
        _code_failed(exc, as_json, text)
    finally:
        hot.close()


@codes_app.command("verify")
def codes_verify(
    code: str, user: UserOption = None, as_json: JsonOption = False, data_dir: DataDir = None
) -> None:
    """Check that a code belongs to a stored offer that is neither redeemed nor expired (with
    --user: and that it is that customer's). Exit 0 valid, 1 malformed, 2 unknown, 3 redeemed,
    4 expired, 5 voided (a counter-offer replaced it), 6 another customer's."""
    answer = _code_answer("verify", code, user, as_json, data_dir)
    if as_json:
        print(json.dumps(answer.as_json()))
        return
    state = answer.state
    out(
        f"valid: {answer.code} is offer {state.offer_id}, {state.discount_pct:g}% off until "
        f"{state.expires_at.isoformat()}"
    )


@codes_app.command("redeem")
def codes_redeem(
    code: str,
    user: UserOption = None,
    any_user: Annotated[
        bool,
        typer.Option("--any-user", help="Redeem whoever the code was made for (no owner check)."),
    ] = False,
    as_json: JsonOption = False,
    data_dir: DataDir = None,
) -> None:
    """Redeem a code once, for the customer it was made for: the discount is the stored offer's.
    Give the customer (--user U; another customer's code is refused) or say --any-user. Exit
    codes as for verify, and 6 for another customer's code (1 also for a usage error)."""
    if (user is None) == (not any_user):
        why = "both --user and --any-user" if any_user else "neither --user nor --any-user"
        message = (
            f"redeem needs the customer: --user USER_ID (refuses another customer's code) or "
            f"--any-user (no owner check), got {why}"
        )
        if as_json:
            print(json.dumps({"status": "usage", "code": code, "error": message}))
            raise typer.Exit(1)
        fail(message)
    answer = _code_answer("redeem", code, user, as_json, data_dir)
    if as_json:
        print(json.dumps(answer.as_json()))
        return
    whose = f" for customer {user}" if user is not None else ""
    state = answer.state
    out(f"redeemed {answer.code}{whose}: offer {state.offer_id}, {state.discount_pct:g}% off")
