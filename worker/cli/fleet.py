"""``sgr`` commands for a fleet: the Prometheus exporter, a worker's liveness probe and the bridge
that turns events pushed by any Redis client into RQ jobs."""

from __future__ import annotations

import contextlib
import json
import os
import socket
from datetime import UTC, datetime
from socketserver import ThreadingMixIn
from typing import Annotated, Any

import typer

from worker.cli.app import app, fail, redis_client, settings

metrics_app = typer.Typer(help="Prometheus metrics of the fleet.", no_args_is_help=True)
app.add_typer(metrics_app, name="metrics")
RQ_WORKER_TTL_S = 420  # RQ's default worker_ttl: an idle worker heartbeats well within it


@metrics_app.command("serve")
def metrics_serve(
    port: Annotated[int | None, typer.Option(help="Port (default SGR_METRICS_PORT).")] = None,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "0.0.0.0",
    once: Annotated[
        bool, typer.Option(help="Print one scrape on stdout and exit (no server).")
    ] = False,
) -> None:
    """Serve the fleet's metrics at http://HOST:PORT/metrics, and /healthz (the exporter
    answers; no store read: for probes). One exporter per fleet: every scrape reads the hot
    store's counters and Redis, so counts equal the stores' whatever the number of worker
    processes; a source it cannot read is sgr_up{source=...} 0, never a failed scrape."""
    from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

    from prometheus_client import generate_latest

    from stores.base import StoreTransient
    from worker.metrics import exporter_app, exporter_redis, registry_for
    from worker.runtime import open_store

    s = settings(metrics_port=port)
    # a data folder or store that is not there is said, never made; one that is away for now is
    # sgr_up{source="hot_store"} 0 until it is back
    with contextlib.suppress(StoreTransient):
        open_store(s).close()
    registry = registry_for(s, exporter_redis(s))
    if once:
        print(generate_latest(registry).decode(), end="")
        return

    class Server(ThreadingMixIn, WSGIServer):
        daemon_threads = True

    class QuietHandler(WSGIRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass  # one line per scrape is noise

    try:
        server = make_server(
            host, s.metrics_port, exporter_app(registry), Server, handler_class=QuietHandler
        )
    except OSError as exc:
        fail(f"cannot listen on {host}:{s.metrics_port}: {exc.strerror or exc}")
    print(f"sgr metrics: http://{host}:{s.metrics_port}/metrics (/healthz)", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it exists
        return True
    return True


@app.command()
def health(
    pid: Annotated[
        int | None, typer.Option(help="Only the worker with this PID (default: every one).")
    ] = None,
    max_age: Annotated[
        float | None,
        typer.Option(help="Heartbeat age that counts as stale, s (default: job timeout + 60)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Exit 0 while the RQ workers of this host (hostname) are registered in Redis, alive, and
    their heartbeat is fresh; 1 otherwise. For a Kubernetes exec liveness probe in the worker's
    container (one worker per container) or a compose healthcheck."""
    from rq import Worker

    s = settings()
    limit = max_age if max_age is not None else max(RQ_WORKER_TTL_S, s.job_timeout_s + 60)
    host = socket.gethostname()
    conn = redis_client(s)
    now = datetime.now(UTC)
    found: list[dict[str, Any]] = []
    for worker in Worker.all(connection=conn):
        if worker.hostname != host or (pid is not None and worker.pid != pid):
            continue
        beat = worker.last_heartbeat
        if beat is not None and beat.tzinfo is None:
            beat = beat.replace(tzinfo=UTC)
        age = (now - beat).total_seconds() if beat else None
        found.append(
            {
                "name": worker.name,
                "pid": worker.pid,
                "state": worker.get_state(),
                "heartbeat_age_s": None if age is None else round(age, 1),
                "alive": worker.pid is not None and _alive(int(worker.pid)),
            }
        )
    problems = [
        f"worker {w['name']} (pid {w['pid']}): "
        + ("process gone" if not w["alive"] else f"heartbeat {w['heartbeat_age_s']} s old")
        for w in found
        if not w["alive"] or w["heartbeat_age_s"] is None or w["heartbeat_age_s"] > limit
    ]
    if not found:
        problems.append(
            f"no RQ worker of host {host!r}{f' with pid {pid}' if pid else ''} is registered"
        )
    if as_json:
        print(json.dumps({"healthy": not problems, "host": host, "workers": found}))
    if problems:
        fail("; ".join(problems))
    if not as_json:
        print(f"ok: {len(found)} worker(s) on {host}, heartbeats within {limit:g} s")


@app.command()
def bridge(
    key: Annotated[
        str | None, typer.Option(help="Redis list to read events from (default sgr:events:in).")
    ] = None,
    rejected: Annotated[
        str | None,
        typer.Option(help="List for events that were refused (default sgr:events:rejected)."),
    ] = None,
    batch: Annotated[int, typer.Option(min=1, help="Events moved per round.")] = 100,
    once: Annotated[bool, typer.Option(help="Stop when the list is empty.")] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print totals as JSON at the end.")
    ] = False,
) -> None:
    """Turn events pushed on a Redis list by any client (`redis-cli RPUSH sgr:events:in JSON`)
    into RQ jobs, validated as enqueue_events does; refused ones go to the rejected list with
    their error."""
    from producers.bridge import Bridge
    from worker.keys import Keys
    from worker.runtime import publisher

    s = settings()
    keys = Keys.from_settings(s)
    conn = redis_client(s)
    conn.ping()
    run = Bridge(
        conn,
        s.queue,
        key or keys.events_in,
        rejected or keys.events_rejected,
        time_limits=s.time_limits(),
        dead_letters=keys.dead_letters,
        alerts=keys.queue_alerts,
        outcomes=publisher(conn, s, keys),
        rejected_max=s.rejected_max,
        **s.job_options(),
    )
    try:
        totals = run.run(batch=batch, once=once)
    except KeyboardInterrupt:
        totals = run.totals
    if as_json:
        print(json.dumps(totals))
