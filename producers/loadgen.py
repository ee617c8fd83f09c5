"""``sgr loadgen``: an open-loop producer of cart events at a target rate, for load tests.

Open loop: events are sent when they are due, whatever the workers do, so a slow fleet shows up as
queue depth and latency, not as a slower producer. Arrivals are Poisson at ``rate`` events/s
(``rate=None``: as fast as Redis takes them), with optional bursts (``burst_factor`` times the rate
for ``burst_len_s`` every ``burst_every_s``). Events come from a population of ``customers`` and
``sessions`` open carts; the mix of event types is configurable (most carts updated, some
abandoned, some ordered, a few customer messages). An abandoned or ordered session is closed and a
new one opens in its place.

``Sender`` (shared with ``producers.replay``) sends ``(offset_s, event)`` pairs at their offsets,
bulk-enqueuing whatever is due in one Redis round trip.
"""

from __future__ import annotations

import json
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import structlog
import typer
from rq import Queue

from producers.enqueue import enqueue_events
from producers.synthetic import MESSAGES, random_cart, user_id

log = structlog.get_logger("sgr.loadgen")

KINDS = {
    "updated": "cart_updated",
    "abandoned": "cart_abandoned",
    "ordered": "order_completed",
    "message": "customer_message",
}


@dataclass(frozen=True)
class Mix:
    """Shares of event types (normalised): updated, abandoned, ordered, message."""

    updated: float = 0.70
    abandoned: float = 0.15
    ordered: float = 0.10
    message: float = 0.05

    @classmethod
    def parse(cls, text: str) -> Mix:
        """``"updated=0.7,abandoned=0.2,ordered=0.1"``; names left out get 0."""
        shares = dict.fromkeys(KINDS, 0.0)
        for part in filter(None, (p.strip() for p in text.split(","))):
            name, _, value = part.partition("=")
            if name.strip() not in KINDS:
                raise ValueError(f"unknown event kind {name!r} in mix (use {', '.join(KINDS)})")
            shares[name.strip()] = float(value)
        if sum(shares.values()) <= 0 or min(shares.values()) < 0:
            raise ValueError(f"mix {text!r}: shares must be >= 0 with a positive sum")
        return cls(**shares)

    def weights(self) -> tuple[list[str], list[float]]:
        kinds = [KINDS[name] for name in KINDS]
        return kinds, [getattr(self, name) for name in KINDS]


def _mix(text: str) -> Mix:
    try:
        return Mix.parse(text)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--mix") from None


@dataclass(frozen=True)
class LoadConfig:
    rate: float | None = 50.0  # events per second; None = as fast as possible
    count: int | None = None  # stop after this many events ...
    duration_s: float | None = None  # ... or after this long (at least one of the two)
    customers: int = 5000  # known customers (ids u000000...), as `sgr setup-data` makes them
    new_customer_share: float = 0.1
    sessions: int = 200  # carts open at the same time
    mix: Mix = field(default_factory=Mix)
    burst_every_s: float = 0.0  # 0 = no bursts
    burst_len_s: float = 1.0
    burst_factor: float = 5.0
    seed: int = 1

    def rate_at(self, offset_s: float) -> float | None:
        if self.rate is None:
            return None
        if self.burst_every_s > 0 and offset_s % self.burst_every_s < self.burst_len_s:
            return self.rate * self.burst_factor
        return self.rate


class Population:
    """Open cart sessions over a customer population; makes each next event of the mix."""

    def __init__(self, cfg: LoadConfig, rng: random.Random) -> None:
        self.cfg = cfg
        self.rng = rng
        self.kinds, self.weights = cfg.mix.weights()
        self.open: list[dict[str, Any]] = [self._new_session() for _ in range(cfg.sessions)]

    def _hex(self, digits: int) -> str:
        return uuid.UUID(int=self.rng.getrandbits(128)).hex[:digits]

    def _new_session(self) -> dict[str, Any]:
        if self.rng.random() < self.cfg.new_customer_share:
            user = f"new-{self._hex(10)}"
        else:
            user = user_id(self.rng.randrange(max(1, self.cfg.customers)))
        inventory = self.rng.choices(["in_stock", "low_stock", "out_of_stock"], [0.9, 0.08, 0.02])
        return {
            "user_id": user,
            "session_id": f"s-{self._hex(12)}",
            "inventory": inventory[0],
            "cart": random_cart(self.rng),
        }

    def next_event(self, occurred_at: datetime) -> dict[str, Any]:
        slot = self.rng.randrange(len(self.open))
        session = self.open[slot]
        kind = self.rng.choices(self.kinds, self.weights)[0]
        event: dict[str, Any] = {
            "event_id": f"lg-{self._hex(24)}",
            "type": kind,
            "occurred_at": occurred_at.isoformat(),
            "user_id": session["user_id"],
            "session_id": session["session_id"],
            "inventory": session["inventory"],
        }
        if kind == "customer_message":
            event["message"] = self.rng.choice(MESSAGES)
        else:
            if kind == "cart_updated" and self.rng.random() < 0.3:
                session["cart"] = random_cart(self.rng)
            event["cart"] = session["cart"]
        if kind in ("cart_abandoned", "order_completed"):
            self.open[slot] = self._new_session()
        return event


def generate(
    cfg: LoadConfig, start: datetime | None = None
) -> Iterator[tuple[float, dict[str, Any]]]:
    """``(offset_s, event)`` in send order; ``occurred_at`` is ``start + offset``."""
    if cfg.count is None and cfg.duration_s is None:
        raise ValueError("give a count or a duration")
    rng = random.Random(cfg.seed)
    population = Population(cfg, rng)
    start = start or datetime.now(UTC)
    offset, sent = 0.0, 0
    while cfg.count is None or sent < cfg.count:
        rate = cfg.rate_at(offset)
        if rate is not None:
            offset += rng.expovariate(rate)
        if cfg.duration_s is not None and offset > cfg.duration_s:
            return
        yield offset, population.next_event(start + timedelta(seconds=offset))
        sent += 1


@dataclass
class SendStats:
    sent: int = 0
    rejected: int = 0
    elapsed_s: float = 0.0
    max_lag_s: float = 0.0  # how late the producer was against the schedule, at worst
    offsets: list[float] = field(default_factory=list)  # send time of each event (keep_offsets)
    event_ids: list[str] = field(default_factory=list)  # in send order (keep_offsets)


class Sender:
    """Sends ``(offset_s, event)`` pairs when they are due, in the given order, in bulk."""

    def __init__(
        self,
        queue: Queue,
        *,
        batch: int = 500,
        events_per_job: int = 1,
        max_attempts: int = 3,
        job_timeout: int = 120,
        keep_offsets: bool = False,
        on_tick: Callable[[SendStats], None] | None = None,
        tick_s: float = 0.25,
        stop: threading.Event | None = None,
    ) -> None:
        self.queue = queue
        self.batch = batch
        self.events_per_job = events_per_job  # more than 1: handle_batch jobs (worker/runner.py)
        self.max_attempts = max_attempts
        self.job_timeout = job_timeout
        self.keep_offsets = keep_offsets
        self.on_tick = on_tick
        self.tick_s = tick_s
        self.stop = stop or threading.Event()
        self.stats = SendStats()

    def _flush(self, pending: list[dict[str, Any]], t0: float) -> None:
        if not pending:
            return
        report = enqueue_events(
            self.queue,
            pending,
            max_attempts=self.max_attempts,
            job_timeout=self.job_timeout,
            pipeline_size=self.batch,
            batch_size=self.events_per_job,
        )
        self.stats.sent += len(report.accepted)
        self.stats.rejected += len(report.rejected)
        if self.keep_offsets:
            now = time.monotonic() - t0
            self.stats.offsets.extend([now] * len(pending))
            self.stats.event_ids.extend(str(e.get("event_id")) for e in pending)
        pending.clear()

    def run(
        self, timed: Iterable[tuple[float, dict[str, Any]]], until_s: float | None = None
    ) -> SendStats:
        """Send every pair at its offset (stopping early at ``until_s`` seconds, if given)."""
        t0 = time.monotonic()
        last_tick = t0
        pending: list[dict[str, Any]] = []
        for offset, event in timed:
            now = time.monotonic()
            if self.stop.is_set() or (until_s is not None and now - t0 >= until_s):
                break
            if offset > now - t0:
                self._flush(pending, t0)
                while not self.stop.is_set():
                    wait = t0 + offset - time.monotonic()
                    if wait <= 0:
                        break
                    time.sleep(min(wait, self.tick_s))
                    if self.on_tick and time.monotonic() - last_tick >= self.tick_s:
                        last_tick = time.monotonic()
                        self.stats.elapsed_s = last_tick - t0
                        self.on_tick(self.stats)
            else:
                self.stats.max_lag_s = max(self.stats.max_lag_s, now - t0 - offset)
            pending.append(event)
            if len(pending) >= self.batch:
                self._flush(pending, t0)
                if self.on_tick and time.monotonic() - last_tick >= self.tick_s:
                    last_tick = time.monotonic()
                    self.stats.elapsed_s = last_tick - t0
                    self.on_tick(self.stats)
        self._flush(pending, t0)
        self.stats.elapsed_s = time.monotonic() - t0
        if self.on_tick:
            self.on_tick(self.stats)
        return self.stats


def record(
    events: Iterable[tuple[float, dict[str, Any]]], path: Path
) -> Iterator[tuple[float, dict[str, Any]]]:
    """Pass events through while writing them as JSON lines (a file ``replay`` can push later)."""
    with path.open("w", encoding="utf-8") as out:
        for offset, event in events:
            out.write(json.dumps(event, separators=(",", ":")) + "\n")
            yield offset, event


# CLI ------------------------------------------------------------------------------------------
app = typer.Typer(add_completion=False, help=__doc__.split("\n")[0] if __doc__ else None)


@app.command()
def main(
    rate: Annotated[float, typer.Option(help="Target events/s (0 = as fast as possible).")] = 50.0,
    count: Annotated[int | None, typer.Option(help="Stop after this many events.")] = None,
    duration: Annotated[float | None, typer.Option(help="Stop after this many seconds.")] = None,
    customers: Annotated[int, typer.Option(help="Known customers to draw from.")] = 5000,
    new_customers: Annotated[float, typer.Option(help="Share of unknown customers.")] = 0.1,
    sessions: Annotated[int, typer.Option(help="Carts open at the same time.")] = 200,
    mix: Annotated[
        str,
        typer.Option(help="Event mix, e.g. updated=0.7,abandoned=0.15,ordered=0.1,message=0.05"),
    ] = "updated=0.7,abandoned=0.15,ordered=0.1,message=0.05",
    burst_every: Annotated[float, typer.Option(help="Seconds between bursts (0 = none).")] = 0.0,
    burst_len: Annotated[float, typer.Option(help="Length of a burst, seconds.")] = 1.0,
    burst_factor: Annotated[float, typer.Option(help="Rate multiplier in a burst.")] = 5.0,
    seed: int = 1,
    replay: Annotated[
        Path | None, typer.Option(help="Push this JSON-lines file of recorded events instead.")
    ] = None,
    speed: Annotated[
        float, typer.Option(help="Replay pace: x recorded speed (0 = as fast as possible).")
    ] = 1.0,
    retime: Annotated[bool, typer.Option(help="Replay: shift occurred_at to now.")] = False,
    fresh_ids: Annotated[bool, typer.Option(help="Replay: new event ids (re-run a file).")] = False,
    save: Annotated[
        Path | None, typer.Option(help="Also write the events sent (JSON lines).")
    ] = None,
    queue: Annotated[str | None, typer.Option(help="Queue name (default SGR_QUEUE).")] = None,
    data_dir: Annotated[Path | None, typer.Option(help="Data folder, for progress.")] = None,
    quiet: Annotated[bool, typer.Option(help="No live display; print the summary only.")] = False,
    batch: Annotated[
        int,
        typer.Option(
            min=1, max=1000, help="Events per RQ job (1 = one job per event; more: batch jobs)."
        ),
    ] = 1,
) -> None:
    """Push synthetic (or replayed) cart events at a target rate and watch the fleet keep up."""
    import redis

    from producers.progress import LiveProgress
    from worker.settings import Settings

    settings = Settings()
    updates: dict[str, Any] = {}
    if queue:
        updates["queue"] = queue
    if data_dir:
        updates["data_dir"] = data_dir
    settings = settings.model_copy(update=updates) if updates else settings
    if replay is None and count is None and duration is None:
        raise typer.BadParameter("give --count or --duration (or --replay FILE)")
    conn = redis.Redis.from_url(settings.redis_url)
    q = Queue(settings.queue, connection=conn)
    timed: Iterable[tuple[float, dict[str, Any]]]
    if replay is not None:
        from producers.replay import read_events, timeline

        timed = timeline(read_events(replay), speed=speed, retime=retime, fresh_ids=fresh_ids)
    else:
        cfg = LoadConfig(
            rate=rate or None,
            count=count,
            duration_s=duration,
            customers=customers,
            new_customer_share=new_customers,
            sessions=sessions,
            mix=_mix(mix),
            burst_every_s=burst_every,
            burst_len_s=burst_len,
            burst_factor=burst_factor,
            seed=seed,
        )
        timed = generate(cfg)
    if save is not None:
        timed = record(timed, save)
    started = datetime.now(UTC)
    progress = LiveProgress(settings, conn, started, enabled=not quiet)
    sender = Sender(
        q,
        batch=max(500, batch),
        events_per_job=batch,
        max_attempts=settings.max_attempts,
        job_timeout=settings.job_timeout_s,
        on_tick=progress.update,
        tick_s=0.5,
    )
    with progress:
        try:
            stats = sender.run(timed, until_s=duration)
        except KeyboardInterrupt:
            stats = sender.stats
    summary = {
        "queue": settings.queue,
        "events_per_job": batch,
        "sent": stats.sent,
        "rejected": stats.rejected,
        "seconds": round(stats.elapsed_s, 3),
        "rate_per_s": round(stats.sent / stats.elapsed_s, 1) if stats.elapsed_s else None,
        "max_lag_s": round(stats.max_lag_s, 3),
        "started_at": started.isoformat(),
    }
    typer.echo(json.dumps(summary))


if __name__ == "__main__":
    app()
