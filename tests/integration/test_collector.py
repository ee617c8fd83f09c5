"""The collector on a small real run (real redis-server, stock `rq worker`, real SQLite/DuckDB,
the LLM STAND-IN at the edge): its figures match the stores row by row."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
import redis
from rq import Queue

from producers.enqueue import enqueue_events
from producers.stats import percentile, summarize
from testbench.collector import STAGES, collect, plot
from testbench.fleet import Fleet
from testbench.standin_llm import StandInLLM
from tests.conftest import event, worker_env


def test_percentiles_interpolate_between_ranks() -> None:
    values = [float(v) for v in range(1, 11)]  # 1..10
    assert percentile(values, 50) == 5.5
    assert percentile(values, 95) == pytest.approx(9.55)
    assert percentile(values, 0) == 1 and percentile(values, 100) == 10
    assert percentile([7.0], 99) == 7.0
    s = summarize([3.0, 1.0, 2.0])
    assert s == {"n": 3, "mean": 2.0, "p50": 2.0, "p95": 2.9, "p99": 2.98, "max": 3.0}
    assert summarize([])["p50"] is None


def _ms(later: str | None, earlier: str | None) -> float | None:
    if later is None or earlier is None:
        return None
    delta = datetime.fromisoformat(later) - datetime.fromisoformat(earlier)
    return delta.total_seconds() * 1000


def _expected(values: list[float]) -> dict[str, float]:
    arr = np.array(values)
    return {
        "p50": float(np.percentile(arr, 50)),
        "p95": float(np.percentile(arr, 95)),
        "p99": float(np.percentile(arr, 99)),
        "max": float(arr.max()),
    }


@pytest.mark.integration
def test_report_of_a_small_real_run(
    redis_client: redis.Redis, redis_url: str, data_dir: Path, tmp_path: Path
) -> None:
    now = datetime.now(UTC)
    events = [
        event(event_id=f"a{i}", user=f"u{i:06d}", session=f"s{i}", at=now, value=150.0)
        for i in range(10)
    ]
    events += [
        event("cart_updated", event_id=f"c{i}", user=f"u{100 + i:06d}", session=f"t{i}", at=now)
        for i in range(4)
    ]
    events.append(event(event_id="small", user="u000200", session="x", at=now, value=5.0))
    queue = Queue("collector-test", connection=redis_client)
    since = datetime.now(UTC) - timedelta(seconds=1)
    enqueue_events(queue, events)
    with StandInLLM(latency_s=0.02) as llm:
        env = worker_env(data_dir, SGR_ENGINE="vllm", SGR_LLM_URL=llm.url, SGR_LLM_MODEL="stand-in")
        Fleet(2, redis_url, "collector-test", env, burst=True).start().wait(120)

    report, rows = collect(
        data_dir / "hot.sqlite", redis_client, queue="collector-test", since=since
    )
    assert report["events"] == 15 and len(rows) == 15
    assert report["outcomes"] == {"offer": 10, "no_offer": 5}
    assert report["reasons"] == {"not_a_trigger": 4, "below_min_cart_value": 1}
    assert report["stream"] == {"offers": 10, "unpublished": 0}
    assert report["errors"]["dead_letters"] == 0 and report["errors"]["failed_jobs"] == 0
    assert report["fallbacks"] == 0 and report["engines"] == {"vllm": 10}

    # The same figures computed here, straight from the stores.
    db = sqlite3.connect(data_dir / "hot.sqlite")
    db.row_factory = sqlite3.Row
    table = db.execute(
        "SELECT p.*, o.published_at AS offer_published_at"  # p.published_at: the outcome's
        " FROM processed_events p LEFT JOIN offers o USING (offer_id)"
    ).fetchall()
    waits = [_ms(r["started_at"], r["enqueued_at"]) for r in table]
    stage: dict[str, list[float]] = {"queue_wait": [w for w in waits if w is not None]}
    for r in table:
        for name, ms in json.loads(r["timings"]).items():
            stage.setdefault(name, []).append(ms)
        if r["offer_published_at"]:  # committed first, published after: the publication stage
            stage.setdefault("publish", []).append(_ms(r["offer_published_at"], r["finished_at"]))
    assert set(stage) <= set(STAGES)
    assert len(stage["llm"]) == 10 and len(stage["state"]) == 15 and len(stage["publish"]) == 10
    for name, values in stage.items():
        got = report["stages_ms"][name]
        assert got["n"] == len(values)
        for key, want in _expected(values).items():
            assert got[key] == pytest.approx(want, abs=0.002), (name, key)
    assert report["stages_ms"]["llm"]["p50"] >= 20  # the stand-in's latency is in the llm stage

    published = [
        _ms(r["offer_published_at"], r["enqueued_at"]) for r in table if r["offer_published_at"]
    ]
    for key, want in _expected([v for v in published if v is not None]).items():
        assert report["latency_ms"]["enqueue_to_publish"][key] == pytest.approx(want, abs=0.002)
    occurred = [
        _ms(r["offer_published_at"], r["occurred_at"]) for r in table if r["offer_published_at"]
    ]
    assert report["latency_ms"]["occurred_to_publish"]["max"] == pytest.approx(
        max(v for v in occurred if v is not None), abs=0.002
    )
    first = min(r["enqueued_at"] for r in table)
    last = max(r["finished_at"] for r in table)
    span = _ms(last, first)
    assert span is not None
    assert report["throughput"]["events_per_s"] == pytest.approx(15 / (span / 1000), rel=0.01)
    assert sum(v for v in report["stage_share"].values() if v) == pytest.approx(1.0, abs=0.01)

    later, _ = collect(data_dir / "hot.sqlite", since=datetime.now(UTC) + timedelta(hours=1))
    assert later["events"] == 0 and later["throughput"]["events_per_s"] is None

    png = plot(rows, report, tmp_path / "run.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
