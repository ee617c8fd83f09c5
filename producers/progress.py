"""The live display of ``sgr loadgen``: sent, processed, offers, queue depth, latency."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import redis
import structlog

from producers.stats import _ms, summarize
from stores.sqlfiles import sql
from stores.sqlite import SqliteHotStore
from worker.domain.timefmt import from_text, to_text

log = structlog.get_logger("sgr.loadgen")


class LiveProgress:
    """The live display of ``sgr loadgen``: sent, processed, offers, queue depth, latency."""

    def __init__(
        self, settings: Any, client: redis.Redis, started: datetime, enabled: bool = True
    ) -> None:
        self.settings = settings
        self.client = client
        self.since = to_text(started - timedelta(seconds=1))
        self.enabled = enabled
        self.lock = threading.Lock()
        self.hot: SqliteHotStore | None = None
        self.live: Any = None

    def __enter__(self) -> LiveProgress:
        if not self.enabled:
            return self
        from rich.console import Console
        from rich.live import Live

        if Path(self.settings.hot_db).exists():
            self.hot = SqliteHotStore(self.settings.hot_db)
        self.live = Live(console=Console(stderr=True), refresh_per_second=4, transient=False)
        self.live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.live is not None:
            self.live.__exit__(None, None, None)
        if self.hot is not None:
            self.hot.close()

    def figures(self, sent: int, elapsed_s: float) -> dict[str, Any]:
        from rq import Queue

        figures: dict[str, Any] = {
            "sent": sent,
            "rate": round(sent / elapsed_s, 1) if elapsed_s else 0.0,
            "queued": Queue(self.settings.queue, connection=self.client).count,
        }
        if self.hot is not None:
            row = self.hot.query(sql("hot/report_progress"), {"since": self.since})[0]
            figures.update(
                processed=row["processed"], offers=row["offers"], dead=row["dead_letters"]
            )
            recent = self.hot.query(sql("hot/report_recent"), {"since": self.since, "limit": 2000})
            done = [
                _ms(from_text(r["finished_at"]), from_text(r["enqueued_at"])) or 0.0 for r in recent
            ]
            figures["latency_ms"] = summarize(done)
        return figures

    def update(self, stats: Any) -> None:
        if self.live is None:
            return
        from rich.table import Table

        with self.lock:
            try:
                f = self.figures(stats.sent, stats.elapsed_s)
            except (redis.RedisError, OSError) as exc:
                log.warning("progress_unavailable", error=str(exc))
                return
            table = Table(title=f"sgr loadgen: {stats.elapsed_s:.1f} s", show_header=True)
            for column in ("sent", "rate/s", "processed", "offers", "queued", "p50", "p95", "p99"):
                table.add_column(column, justify="right")
            lat = f.get("latency_ms") or {}

            def cell(value: Any) -> str:
                return (
                    "-"
                    if value is None
                    else f"{value:.0f}"
                    if isinstance(value, float)
                    else str(value)
                )

            table.add_row(
                str(f["sent"]),
                f"{f['rate']:.1f}",
                cell(f.get("processed")),
                cell(f.get("offers")),
                str(f["queued"]),
                *(
                    cell(lat.get(k)) + (" ms" if lat.get(k) is not None else "")
                    for k in ("p50", "p95", "p99")
                ),
            )
            self.live.update(table)
