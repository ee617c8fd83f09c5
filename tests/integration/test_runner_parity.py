"""One runner for every path: a mixed stream of every event type (abandonments, cart updates,
orders, customer messages, replays, out-of-order events, another user's session, bad payloads)
sent one event per job (``handle_event``) and in batch jobs of 1, 7 and 50 (``handle_batch``)
leaves the same outcomes, turns, offers, stream entries and outcome-stream entries (one per
recorded outcome), field by field, on both hot-store backends. Real SQLite files, a real PostgreSQL, a real redis-server; the RQ job functions are
called in this process with its runtime installed."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import redis

from testbench.pgproc import fresh_database
from tests.conftest import NOW, event, make_deps
from worker import jobs
from worker.deadletter import DeadLetters
from worker.domain.events import InvalidEvent
from worker.keys import Keys
from worker.runtime import Runtime, install
from worker.settings import Settings

USERS = [f"user_{n}" for n in range(1, 9)] + ["u000001", "u000002"]  # known and new customers
PRICE = "This is too expensive, can you give me a better price?"


def mixed_stream() -> list[Any]:
    """About 60 payloads touching every path, in an order a shop could send them."""
    out: list[Any] = []
    t = NOW - timedelta(minutes=30)
    for n, user in enumerate(USERS):
        s = f"s{n}"
        at = t + timedelta(seconds=n)
        out.append(event("item_added", event_id=f"{s}-add", user=user, session=s, at=at))
        if n % 4 == 3:  # a price question before any offer: a counter-offer, then no second code
            out.append(
                event(
                    "customer_message",
                    event_id=f"{s}-m0",
                    user=user,
                    session=s,
                    at=at + timedelta(seconds=30),
                    message=PRICE,
                )  # fmt: skip
            )
        out.append(
            event(
                "cart_abandoned",
                event_id=f"{s}-ab",
                user=user,
                session=s,
                at=at + timedelta(minutes=1),
            )  # fmt: skip
        )
        if n % 2 == 0:
            out.append(
                event(
                    "customer_message",
                    event_id=f"{s}-m1",
                    user=user,
                    session=s,
                    at=at + timedelta(minutes=2),
                    message=PRICE,
                )  # fmt: skip
            )
            out.append(
                event(
                    "customer_message",
                    event_id=f"{s}-m2",
                    user=user,
                    session=s,
                    at=at + timedelta(minutes=3),
                    message="Still too much, please go lower.",
                )  # fmt: skip
            )
        if n % 3 == 0:
            out.append(
                event(
                    "customer_message",
                    event_id=f"{s}-m3",
                    user=user,
                    session=s,
                    at=at + timedelta(minutes=4),
                    message="Where is my parcel?",
                )  # fmt: skip
            )
        if n % 4 == 1:
            out.append(event("order_completed", event_id=f"{s}-ord", user=user, session=s, at=at + timedelta(minutes=5)))  # fmt: skip
        if n % 5 == 2:  # out of order: an older cart update after the abandonment
            out.append(event("cart_abandoned", event_id=f"{s}-old", user=user, session=s, at=at - timedelta(minutes=5)))  # fmt: skip
    out.append(dict(out[1]))  # a replay of an event already sent
    out.append(dict(out[7]))
    out.append(  # another customer's session
        event(
            "customer_message",
            event_id="intruder",
            user="user_99",
            session="s0",
            at=NOW - timedelta(minutes=1),
            message=PRICE,
        )  # fmt: skip
    )
    out.append(event("cart_abandoned", event_id="thief", user="user_99", session="s1", at=NOW))
    out.append({"event_id": "bad-1", "type": "cart_abandoned"})  # bad payloads
    out.append(event(event_id="bad-2", user="user_5", session="s77", margin=1.7))
    out.append("not an object")
    return out


@contextmanager
def hot_url_for(backend: str, postgres_url: str | None) -> Iterator[str]:
    if backend == "sqlite":
        yield ""
        return
    assert postgres_url is not None
    with fresh_database(postgres_url) as url:
        yield url


def runtime_for(data_dir: Path, client: redis.Redis, hot_url: str) -> Runtime:
    settings = Settings(data_dir=data_dir, engine="policy", reap_interval_s=0)  # type: ignore[call-arg]
    keys = Keys.from_settings(settings)
    deps = make_deps(data_dir, client, hot_store_url=hot_url)
    return Runtime(settings, keys, client, deps, DeadLetters(client, keys.dead_letters, keys.store_failures))  # fmt: skip


def send(payloads: list[Any], batch: int | None) -> None:
    if batch is None:
        for payload in payloads:
            with contextlib.suppress(InvalidEvent):  # dead-lettered; RQ sees the job fail
                jobs.handle_event(payload)
        return
    for start in range(0, len(payloads), batch):
        jobs.handle_batch(payloads[start : start + batch])


CODE = re.compile(r"\b[A-Z0-9]{4,}(?:-[A-Z0-9]{4,})+\b")


def scrub(text: str, codes: dict[str, str]) -> str:
    for code, name in codes.items():
        text = text.replace(code, name)
    return text


def snapshot(runtime: Runtime) -> dict[str, Any]:
    """Everything the run left, with the random parts (offer ids, codes) named by their order."""
    hot = runtime.deps.hot
    outcomes = hot.query(
        "SELECT event_id, outcome, reason, offer_id, error FROM processed_events ORDER BY event_id"
    )
    offers = hot.query(
        "SELECT offer_id, event_id, user_id, session_id, discount_pct, cap_pct, currency, code, "
        "message, engine FROM offers ORDER BY event_id"
    )
    ids = {o["offer_id"]: f"offer:{o['event_id']}" for o in offers}
    codes = {o["code"]: f"code:{o['event_id']}" for o in offers}
    turns = hot.query(
        "SELECT event_id, session_id, turn, route, reason, reply, offer_id, discount_pct, cap_pct "
        "FROM turns ORDER BY event_id"
    )
    voids = hot.query("SELECT offer_id, superseded_by FROM offer_voids ORDER BY offer_id")

    def clean(row: dict[str, Any]) -> dict[str, Any]:
        out = {}
        for k, v in dict(row).items():
            if isinstance(v, str) and v.startswith("job:"):
                v = "job:*"  # a payload with no usable event id is filed under its job and place
            if isinstance(v, str):
                v = ids.get(v, v)
                v = scrub(v, codes)
            out[k] = float(v) if k.endswith("_pct") and v not in (None, "") else v
        return out

    stream = []
    for _id, fields in runtime.client.xrange(runtime.keys.offers_stream):
        entry = {k.decode(): v.decode() for k, v in fields.items()}
        for k in ("created_at", "stream_id"):
            entry.pop(k, None)
        stream.append(clean(entry))
    letters = sorted(
        ("job:*" if d.event_id.startswith("job:") else d.event_id, d.error)
        for d in runtime.dead_letters.list(1000)
    )
    told = []  # the outcome stream: one entry per recorded outcome
    for _id, fields in runtime.client.xrange(runtime.keys.outcomes_stream):
        entry = {k.decode(): v.decode() for k, v in fields.items()}
        for k in ("outcome_id", "at"):  # derived from the moment it was recorded
            entry.pop(k)
        told.append(clean(entry))
    return {
        "outcomes": sorted(
            (clean(r) for r in outcomes), key=lambda r: (r["event_id"], r["error"] or "")
        ),
        "offers": sorted((clean(r) for r in offers), key=lambda r: r["event_id"]),
        "turns": [clean(r) for r in turns],
        "voids": sorted((clean(r) for r in voids), key=lambda r: r["offer_id"]),
        "stream": sorted(stream, key=lambda e: (e.get("event_id", ""), e.get("type", ""))),
        "dead_letters": letters,
        "outcome_stream": sorted(told, key=lambda e: (e["event_id"], e["error"])),
    }


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_every_path_gives_the_same_outcomes_turns_offers_and_entries(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path, cold_db: Path, redis_url: str
) -> None:
    postgres_url = request.getfixturevalue("postgres_url") if backend == "postgres" else None
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    payloads = mixed_stream()
    seen: dict[str, dict[str, Any]] = {}
    for batch in (None, 1, 7, 50):
        name = "single" if batch is None else f"batch{batch}"
        data_dir = tmp_path / name
        data_dir.mkdir()
        (data_dir / "cold.duckdb").symlink_to(cold_db)
        (data_dir / "history.sqlite").symlink_to(cold_db.with_name("history.sqlite"))
        with hot_url_for(backend, postgres_url) as url:
            client.flushdb()
            runtime = install(runtime_for(data_dir, client, url))
            try:
                send(payloads, batch)
                seen[name] = snapshot(runtime)
            finally:
                runtime.deps.hot.close()
    base = seen["single"]
    # the stream is worth comparing: offers, counter-offers and replies are all on it
    types = {e.get("type") for e in base["stream"]}
    assert {"offer", "reply"} <= types, types
    assert any(t["offer_id"] for t in base["turns"]), "no counter-offer in the stream"
    assert len(base["dead_letters"]) >= 3
    reasons = {o["reason"] for o in base["outcomes"]}
    assert {"not_a_trigger", "stale_event", "session_of_another_user"} <= reasons, reasons
    # every recorded outcome is on the outcome stream once, saying what the hot store says
    told = base["outcome_stream"]
    assert len(told) == len(base["outcomes"])
    assert sorted((e["event_id"], e["outcome"], e["reason"] or None) for e in told) == sorted(
        (o["event_id"], o["outcome"], o["reason"]) for o in base["outcomes"]
    )
    assert {e["outcome"] for e in told} == {"offer", "no_offer", "dead_letter"}
    for entry in told:
        assert entry["type"] == "outcome"
        assert bool(entry["offer_id"]) == (entry["outcome"] == "offer")
        assert bool(entry["error_kind"]) == (entry["outcome"] == "dead_letter")
        if entry["outcome"] == "dead_letter":  # the contract's error names the field
            assert entry["error_kind"] == "invalid_event" and entry["error"], entry
    for name, got in seen.items():
        for part in base:
            assert got[part] == base[part], f"{name}: {part} differs from one event per job"
