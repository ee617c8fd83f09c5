"""``sgr`` commands for data: customer history (set-up, snapshot) and putting events on the queue."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from worker.cli.app import DataDir, app, fail, out, redis_client, settings

history_app = typer.Typer(
    help="The history snapshot workers read (a copy of the cold store).",
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.add_typer(history_app, name="history")


@app.command("setup-data")
def setup_data(
    data_dir: DataDir = None,
    customers: Annotated[int, typer.Option(help="How many customers of history.")] = 5000,
    seed: int = 7,
    force: Annotated[
        bool, typer.Option(help="Replace an existing cold store and hot store (offers are lost).")
    ] = False,
) -> None:
    """Generate synthetic customer history (DuckDB), its snapshot for workers, and the hot store
    (SQLite, or the schema in SGR_HOT_STORE_URL's database). Run again, it makes only what is
    missing and keeps what is there (exit 0: "already set up"); --force replaces the cold store
    and the SQLite hot store."""
    from producers.synthetic import customers as make_customers
    from stores.cold import summary, write_history
    from stores.sync import sync_snapshot
    from worker.runtime import open_store

    s = settings(data_dir)
    sqlite_hot = not s.hot_store_url.get_secret_value()
    if force:
        for name in ("hot.sqlite", "hot.sqlite-wal", "hot.sqlite-shm", "cold.duckdb"):
            (s.data_dir / name).unlink(missing_ok=True)
    made = []
    if not s.cold_db.exists():
        count = write_history(s.cold_db, make_customers(customers, seed))
        made.append(f"cold store {s.cold_db}: {count} customers {summary(s.cold_db)}")
    if not s.history_db.exists() or made:
        snapshot = sync_snapshot(s.cold_db, s.history_db)
        made.append(f"snapshot   {snapshot.path}: {snapshot.customers} customers")
    new_hot = sqlite_hot and not s.hot_db.exists()
    hot = open_store(s, create=True)  # migrates an existing store to this release's schema
    where = hot.where
    hot.close()
    if new_hot or not sqlite_hot and made:
        made.append(f"hot store  {where}: ready")
    if not made:  # one line, unwrapped: scripts and compose logs read it
        print(
            f"{s.data_dir} is already set up (cold store, snapshot, hot store {where}): nothing "
            "to do; --force replaces the cold store and the SQLite hot store (offers are lost)"
        )
        return
    for line in made:
        out(line)


@app.command()
def migrate(
    data_dir: DataDir = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Bring the hot store's schema (SGR_HOT_STORE_URL, or the data folder's SQLite file) to this
    release's version, and say which migrations it applied. Workers do the same at start-up."""
    from stores.hot import open_hot_store

    s = settings(data_dir)
    store = open_hot_store(s.hot_store_url.get_secret_value(), s.hot_db, migrate=False)
    try:
        report = store.migrate()
    finally:
        store.close()
    print(json.dumps(report.as_dict()) if as_json else report.line())


@history_app.command("sync")
def history_sync(data_dir: DataDir = None) -> None:
    """Copy the cold store's customer features (DuckDB) into the snapshot workers read. Run it
    after the cold store changes; running workers pick up the new snapshot within a second."""
    from stores.sync import sync_snapshot
    from worker.runtime import require_data_dir

    s = settings(data_dir)
    require_data_dir(s)
    if not s.cold_db.exists():
        fail(f"no cold store at {s.cold_db}: run `sgr setup-data`")
    info = sync_snapshot(s.cold_db, s.history_db)
    out(f"snapshot {info.path}: {info.customers} customers from {info.source}")


@history_app.command("show")
def history_show(data_dir: DataDir = None) -> None:
    """When the snapshot was made, from what, and whether the cold store changed since."""
    from stores.history import snapshot_info
    from worker.domain.timefmt import to_text
    from worker.runtime import require_data_dir

    s = settings(data_dir)
    require_data_dir(s)
    info = snapshot_info(s.history_db)
    if info is None:
        fail(f"no snapshot at {s.history_db}: run `sgr history sync`")
    out(
        {
            "snapshot": str(info.path),
            "customers": info.customers,
            "synced_at": to_text(info.synced_at),
            "source": info.source,
            "stale": info.stale(),
            "workers_read": s.history_source,
        }
    )


def read_events(file: Path) -> tuple[list[tuple[int, Any]], list[tuple[int, str]]]:
    """Events from a JSON-lines file, a JSON array file, or '-' (stdin): (line, payload) pairs and
    (line, error) for lines that are not UTF-8, not JSON or nested too deeply (the others are
    sent: producers/replay.py)."""
    from producers.replay import read_lines

    try:
        data = sys.stdin.buffer.read() if str(file) == "-" else file.read_bytes()
    except OSError as exc:
        fail(f"cannot read {file}: {exc.strerror or exc}")
    if data.lstrip().startswith(b"["):
        try:
            items = json.loads(data.decode("utf-8"))
        except UnicodeDecodeError as exc:
            fail(f"{file} is not UTF-8 text: {exc.reason} at byte {exc.start}")
        except RecursionError:
            fail(f"{file}: a JSON array nested too deeply")
        except json.JSONDecodeError as exc:
            fail(f"{file}: not a JSON array: {exc.msg} at line {exc.lineno}")
        return [(i + 1, item) for i, item in enumerate(items)], []
    return read_lines(data)


@app.command()
def produce(
    file: Annotated[
        Path | None,
        typer.Option(help="Events: a JSON-lines file, a JSON array file, or '-' for stdin."),
    ] = None,
    synthetic: Annotated[int, typer.Option(help="Synthetic sessions to generate.")] = 0,
    seed: int = 11,
    queue: Annotated[str | None, typer.Option(help="Queue name (default SGR_QUEUE).")] = None,
    batch: Annotated[int, typer.Option(help="Events per RQ job (1 = one job per event).")] = 1,
    no_validate: Annotated[bool, typer.Option(help="Send payloads unchecked.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Push cart events onto the RQ queue. Invalid events are reported by line and not sent; the
    exit status is 1 when anything was rejected."""
    from rq import Queue

    from producers.enqueue import enqueue_events
    from producers.synthetic import StreamConfig, event_stream

    if batch < 1:
        fail(f"--batch must be at least 1 (got {batch})")
    s = settings(queue=queue)
    numbered: list[tuple[int, Any]] = []
    not_json: list[tuple[int, str]] = []
    if file is not None:
        numbered, not_json = read_events(file)
    if synthetic:
        numbered.extend((0, e) for e in event_stream(StreamConfig(sessions=synthetic, seed=seed)))
    if file is None and not synthetic:
        fail("nothing to send: give --file FILE (or '-') or --synthetic N")
    q = Queue(s.queue, connection=redis_client(s))
    report = enqueue_events(
        q,
        [payload for _, payload in numbered],
        validate=not no_validate,
        batch_size=batch,
        time_limits=s.time_limits(),
        **s.job_options(),
    )
    err_lines = [(n, e) for n, e in not_json]
    for position, error in report.rejected:
        line = numbered[position][0]
        err_lines.append((line, error))
    for line, error in sorted(err_lines):
        where = f"line {line}" if line else "synthetic event"
        print(f"rejected {where}: {error}", file=sys.stderr)
    result = {
        "queue": s.queue,
        "enqueued": len(report.accepted),
        "jobs": len(report.job_ids),
        "rejected": len(report.rejected) + len(not_json),
        "not_json": len(not_json),
    }
    print(json.dumps(result)) if as_json else out(result)
    if result["rejected"]:
        raise typer.Exit(1)
