"""``sgr retention``: what the hot store and Redis keep (worker/retention.py)."""

from __future__ import annotations

import json
import time
from typing import Annotated

import typer

from worker.cli.app import DataDir, app, out, redis_client, settings

retention_app = typer.Typer(
    help="Bounded stores: old rows to the cold store, Redis trimmed, Redis memory per kind.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.add_typer(retention_app, name="retention")


@retention_app.command("run")
def retention_run(
    data_dir: DataDir = None,
    dry_run: Annotated[bool, typer.Option(help="Count what would move; change nothing.")] = False,
    loop: Annotated[bool, typer.Option(help="Keep going (a sidecar), every --interval s.")] = False,
    interval: Annotated[float, typer.Option(help="Seconds between passes with --loop.")] = 3600.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object a pass.")] = False,
) -> None:
    """Move processed events, offers and turns older than SGR_RETENTION_DAYS to the cold store
    (its archived_* tables) and delete them from the hot store, never a live offer; trim the
    offers stream to SGR_OFFERS_STREAM_MAX_AGE_HOURS and the rejected list to SGR_REJECTED_MAX. Run it
    where the cold store lives (DuckDB has one writer)."""
    from worker.logs import configure
    from worker.retention import run_retention
    from worker.runtime import open_store

    configure(json_logs=True, level="WARNING")  # logs on stderr; the report is stdout's
    s = settings(data_dir)
    hot = open_store(s)
    conn = redis_client(s)
    try:
        while True:
            report = run_retention(s, hot, conn, dry_run=dry_run)  # type: ignore[arg-type]
            print(json.dumps(report.as_dict())) if as_json else out(report.as_dict())
            if not loop:
                return
            time.sleep(interval)
    finally:
        hot.close()


@retention_app.command("memory")
def retention_memory(
    sample: Annotated[int, typer.Option(help="Keys measured per kind (MEMORY USAGE).")] = 500,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """What each kind of key costs in SGR_REDIS_URL's Redis now: RQ jobs, results and
    executions, the offers stream per entry, the published markers; bytes per finished job and
    per published offer (the sizing rule: docs/operations.md#redis-memory)."""
    from worker.keys import Keys
    from worker.retention import redis_memory

    s = settings()
    figures = redis_memory(redis_client(s), Keys.from_settings(s), sample)
    print(json.dumps(figures)) if as_json else out(figures)
