"""``sgr report``: what a run did, from the stores and the offers stream.

Per run (a window of enqueue times, default everything): throughput; end-to-end latency from
``occurred_at`` and from enqueue to publication (p50, p95, p99, max); the time of each stage
(queue wait = started_at - enqueued_at, then the pipeline's own stopwatch: state (reading it),
history, llm, checks; publish = published_at - finished_at, which covers the commit of the event's
one transaction and the Redis round trip); error and fallback counts; offers seen on the stream.
``--json`` prints one JSON object, ``--plot FILE.png`` draws latency over time and the stage
breakdown.

Percentiles interpolate linearly between the two nearest ranks (numpy's default).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import redis
import structlog
import typer

from producers.stats import _ms, summarize
from stores.hot import open_hot_store
from stores.hotstore import SqlHotStore
from worker.domain.timefmt import from_text, to_text

log = structlog.get_logger("sgr.collector")

STAGES = ("queue_wait", "state", "history", "llm", "checks", "publish")
FAR_PAST = datetime(2000, 1, 1, tzinfo=UTC)
FAR_FUTURE = datetime(9999, 12, 31, tzinfo=UTC)


def _time(value: Any) -> datetime | None:
    """A time as either backend returns it (ISO text from SQLite, ``datetime`` from PostgreSQL)."""
    return value if value is None or isinstance(value, datetime) else from_text(value)


def _json(value: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        return value
    return json.loads(value) if value else {}


@dataclass
class EventRow:
    """One processed event with its times parsed."""

    event_id: str
    type: str | None
    outcome: str
    reason: str | None
    error: str | None
    engine: str | None
    occurred_at: datetime | None
    enqueued_at: datetime | None
    started_at: datetime | None
    finished_at: datetime
    published_at: datetime | None
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def queue_wait_ms(self) -> float | None:
        return _ms(self.started_at, self.enqueued_at)

    @property
    def done_ms(self) -> float | None:
        """Enqueue to finish (every outcome)."""
        return _ms(self.finished_at, self.enqueued_at)

    @property
    def enqueue_to_publish_ms(self) -> float | None:
        return _ms(self.published_at, self.enqueued_at)

    @property
    def occurred_to_publish_ms(self) -> float | None:
        return _ms(self.published_at, self.occurred_at)


def load_rows(
    hot: SqlHotStore, since: datetime | None = None, until: datetime | None = None
) -> list[EventRow]:
    """Processed events enqueued in ``[since, until)`` (everything by default), on either
    hot-store backend."""
    params = {"since": since or FAR_PAST, "until": until or FAR_FUTURE}
    rows = []
    for r in hot.report("hot", "report_events", params):
        finished = _time(r["finished_at"])
        assert finished is not None
        rows.append(
            EventRow(
                event_id=r["event_id"],
                type=r["type"],
                outcome=r["outcome"],
                reason=r["reason"],
                error=r["error"],
                engine=r["engine"],
                occurred_at=_time(r["occurred_at"]),
                enqueued_at=_time(r["enqueued_at"]),
                started_at=_time(r["started_at"]),
                finished_at=finished,
                published_at=_time(r["published_at"]),
                timings=_json(r["timings"]),
            )
        )
    return rows


def stage_values(rows: Sequence[EventRow]) -> dict[str, list[float]]:
    """Milliseconds per stage over the events that went through it.

    The outcome (with its stopwatch) is committed before the offer is published, so the stored
    timings end at ``checks``; publication is ``published_at - finished_at`` unless the stopwatch
    has a ``publish`` lap of its own.
    """
    values: dict[str, list[float]] = {stage: [] for stage in STAGES}
    for row in rows:
        wait = row.queue_wait_ms
        if wait is not None:
            values["queue_wait"].append(wait)
        for stage, ms in row.timings.items():
            values.setdefault(stage, []).append(float(ms))
        if "publish" not in row.timings and row.published_at is not None:
            values["publish"].append(max(0.0, _ms(row.published_at, row.finished_at) or 0.0))
    return values


def stream_offers(
    client: redis.Redis, stream: str, since: datetime | None, until: datetime | None
) -> int:
    """Offers added to the stream in the window (by the stream entry's own time)."""
    start = f"{int(since.timestamp() * 1000)}-0" if since else "-"
    end = f"{int(until.timestamp() * 1000)}-0" if until else "+"
    total, cursor = 0, start
    while True:
        entries = client.xrange(stream, min=cursor, max=end, count=5000)
        if not entries:
            return total
        total += len(entries)  # type: ignore[arg-type]
        last = entries[-1][0]  # type: ignore[index]
        last = last.decode() if isinstance(last, bytes) else str(last)
        ms, _, seq = last.partition("-")
        cursor = f"{ms}-{int(seq) + 1}"


def build_report(
    rows: Sequence[EventRow],
    *,
    stream_count: int | None = None,
    failed_jobs: int | None = None,
) -> dict[str, Any]:
    """The run's figures as one JSON-ready dict."""
    outcomes = Counter(row.outcome for row in rows)
    starts = [row.enqueued_at or row.finished_at for row in rows]
    ends = [row.finished_at for row in rows]
    span = (max(ends) - min(starts)).total_seconds() if rows else 0.0
    offers = [row for row in rows if row.outcome == "offer"]

    def values(attr: str, subset: Sequence[EventRow]) -> list[float]:
        return [v for v in (getattr(row, attr) for row in subset) if v is not None]

    stages = stage_values(rows)
    stage_totals = {stage: round(sum(v), 3) for stage, v in stages.items()}
    grand = sum(stage_totals.values())
    return {
        "window": {
            "first_enqueued_at": to_text(min(starts)) if rows else None,
            "last_finished_at": to_text(max(ends)) if rows else None,
            "seconds": round(span, 3),
        },
        "events": len(rows),
        "outcomes": dict(outcomes),
        "reasons": dict(Counter(row.reason for row in rows if row.reason)),
        "throughput": {
            "events_per_s": round(len(rows) / span, 2) if span > 0 else None,
            "offers_per_s": round(len(offers) / span, 2) if span > 0 else None,
        },
        "latency_ms": {
            "enqueue_to_publish": summarize(values("enqueue_to_publish_ms", offers)),
            "occurred_to_publish": summarize(values("occurred_to_publish_ms", offers)),
            "enqueue_to_done": summarize(values("done_ms", rows)),
        },
        "stages_ms": {stage: summarize(v) for stage, v in stages.items()},
        "stage_share": {
            stage: round(total / grand, 4) if grand else None
            for stage, total in stage_totals.items()
        },
        "errors": {
            "dead_letters": outcomes.get("dead_letter", 0),
            "engine_failed": sum(1 for r in rows if r.error and "engine_" in r.error),
            "guardrail_rejected": sum(1 for r in rows if r.reason == "guardrail_rejected"),
            "no_offer_engine_failed": sum(1 for r in rows if r.reason == "engine_failed"),
            "failed_jobs": failed_jobs,
        },
        # An offer whose event carries problems was made by the fallback engine.
        "fallbacks": sum(1 for r in offers if r.error),
        "engines": dict(Counter(r.engine for r in offers if r.engine)),
        "stream": {
            "offers": stream_count,
            "unpublished": sum(1 for r in offers if r.published_at is None),
        },
    }


def collect(
    hot_db: Path,
    client: redis.Redis | None = None,
    *,
    hot_url: str = "",
    stream: str = "sgr:offers",
    queue: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> tuple[dict[str, Any], list[EventRow]]:
    """Read the stores (and the stream and failed registry, given a client) into a report; a
    hot store that is not there is StoreMissing (a report creates nothing)."""
    hot = open_hot_store(hot_url, hot_db, create=False)
    try:
        rows = load_rows(hot, since, until)
    finally:
        hot.close()
    stream_count = failed = None
    if client is not None:
        stream_count = stream_offers(client, stream, since, until)
        if queue:
            from rq import Queue

            failed = Queue(queue, connection=client).failed_job_registry.get_job_count(
                cleanup=False
            )
    return build_report(rows, stream_count=stream_count, failed_jobs=failed), rows


def plot(rows: Sequence[EventRow], report: dict[str, Any], path: Path) -> Path:
    """Latency over time (each event, offers marked) and the mean time of each stage."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 8))
    if rows:
        start = min(r.enqueued_at or r.finished_at for r in rows)
        done = [(r.finished_at, r.done_ms) for r in rows if r.done_ms is not None]
        published = [
            (r.published_at, r.enqueue_to_publish_ms)
            for r in rows
            if r.published_at and r.enqueue_to_publish_ms is not None
        ]
        if done:
            top.scatter(
                [(t - start).total_seconds() for t, _ in done],
                [v for _, v in done],
                s=4,
                alpha=0.5,
                label="enqueue -> done (all events)",
            )
        if published:
            top.scatter(
                [(t - start).total_seconds() for t, _ in published],
                [v for _, v in published],
                s=6,
                alpha=0.7,
                color="tab:red",
                label="enqueue -> published (offers)",
            )
        p95 = report["latency_ms"]["enqueue_to_done"]["p95"]
        if p95 is not None:
            top.axhline(p95, color="grey", linestyle="--", linewidth=1, label=f"p95 {p95:.1f} ms")
    top.set_xlabel("seconds since the first enqueue")
    top.set_ylabel("latency (ms)")
    top.set_title(
        f"{report['events']} events, {report['throughput']['events_per_s']} events/s, "
        f"{report['throughput']['offers_per_s']} offers/s"
    )
    top.legend(loc="upper left", fontsize=8)
    stages = [s for s, v in report["stages_ms"].items() if v["n"]]
    means = [report["stages_ms"][s]["mean"] for s in stages]
    p95s = [report["stages_ms"][s]["p95"] for s in stages]
    ys = range(len(stages))
    bottom.barh([y + 0.2 for y in ys], means, height=0.4, label="mean")
    bottom.barh([y - 0.2 for y in ys], p95s, height=0.4, label="p95", alpha=0.6)
    bottom.set_yticks(list(ys), stages)
    bottom.invert_yaxis()
    bottom.set_xlabel("ms per event that went through the stage")
    bottom.set_title("time per stage")
    bottom.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


# CLI ------------------------------------------------------------------------------------------
app = typer.Typer(add_completion=False)


def _when(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise typer.BadParameter(
            f"{text!r} is not an ISO-8601 time (e.g. 2026-12-01T10:00:00Z); --last N for the "
            "last N seconds"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@app.command()
def main(
    data_dir: Annotated[
        Path | None, typer.Option(help="Data folder (default SGR_DATA_DIR).")
    ] = None,
    since: Annotated[str | None, typer.Option(help="Window start (ISO time of enqueue).")] = None,
    until: Annotated[str | None, typer.Option(help="Window end (ISO time of enqueue).")] = None,
    last: Annotated[float | None, typer.Option(help="Only the last N seconds.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    plot_file: Annotated[Path | None, typer.Option("--plot", help="Write a PNG here.")] = None,
    no_redis: Annotated[bool, typer.Option(help="Do not read the stream/registry.")] = False,
) -> None:
    """Report a run: throughput, latency percentiles, time per stage, errors and fallbacks."""
    from worker.runtime import require_data_dir
    from worker.settings import load_settings

    settings = load_settings(**({} if data_dir is None else {"data_dir": data_dir}))
    if not settings.hot_store_url.get_secret_value():
        require_data_dir(settings)  # a report creates nothing: a typo is named, not made
    start = _when(since)
    if last is not None:
        start = datetime.now(UTC) - timedelta(seconds=last)
    client = None if no_redis else redis.Redis.from_url(settings.redis_url, socket_timeout=5)
    try:
        report, rows = collect(
            settings.hot_db,
            client,
            hot_url=settings.hot_store_url.get_secret_value(),
            stream=settings.offers_stream,
            queue=settings.queue,
            since=start,
            until=_when(until),
        )
    except redis.RedisError:
        report, rows = collect(
            settings.hot_db,
            None,
            hot_url=settings.hot_store_url.get_secret_value(),
            since=start,
            until=_when(until),
        )
    if plot_file is not None:
        plot(rows, report, plot_file)
        report["plot"] = str(plot_file)
    if as_json:
        typer.echo(json.dumps(report))
        return
    from rich.console import Console
    from rich.table import Table

    console = Console()
    console.print(
        f"[bold]{report['events']}[/bold] events in {report['window']['seconds']} s: "
        f"{report['throughput']['events_per_s']} events/s, "
        f"{report['throughput']['offers_per_s']} offers/s; outcomes {report['outcomes']}"
    )
    table = Table(title="milliseconds")
    for column in ("what", "n", "mean", "p50", "p95", "p99", "max"):
        table.add_column(column, justify="right")
    named = {f"latency {k}": v for k, v in report["latency_ms"].items()}
    named |= {f"stage {k}": v for k, v in report["stages_ms"].items()}
    for name, s in named.items():
        table.add_row(
            name,
            *(
                "-" if s[k] is None else f"{s[k]:g}"
                for k in ("n", "mean", "p50", "p95", "p99", "max")
            ),
        )
    console.print(table)
    console.print(
        {"errors": report["errors"], "fallbacks": report["fallbacks"], "stream": report["stream"]}
    )
    if plot_file is not None:
        console.print(f"plot: {plot_file}")


if __name__ == "__main__":
    app()
