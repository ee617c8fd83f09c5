"""The load generator and replay: the count and mix asked for, open-loop pacing, bursts, and a
replay that keeps the file's order and scales the recorded pace."""

from __future__ import annotations

import json
import random
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest
import redis
from rq import Queue

from producers.loadgen import LoadConfig, Mix, Sender, generate
from producers.replay import read_events, timeline
from tests.conftest import NOW, event
from worker.domain.events import parse_event


def test_count_and_mix_are_as_asked() -> None:
    mix = Mix.parse("updated=0.6,abandoned=0.25,ordered=0.1,message=0.05")
    cfg = LoadConfig(rate=None, count=4000, mix=mix, customers=800, sessions=50, seed=3)
    timed = list(generate(cfg, start=NOW))
    assert len(timed) == 4000
    kinds = Counter(parse_event(e).type.value for _, e in timed)  # every event is valid
    expected = {
        "cart_updated": 0.6,
        "cart_abandoned": 0.25,
        "order_completed": 0.1,
        "customer_message": 0.05,
    }
    for kind, share in expected.items():
        assert abs(kinds[kind] / 4000 - share) < 0.03, (kind, kinds)
    assert len({e["event_id"] for _, e in timed}) == 4000
    assert all(offset == 0.0 for offset, _ in timed)  # as fast as possible: all due at once


def test_population_opens_a_new_session_after_an_ending() -> None:
    cfg = LoadConfig(rate=None, count=3000, sessions=5, seed=4)
    closed: set[str] = set()
    for _, e in generate(cfg, start=NOW):
        assert e["session_id"] not in closed  # nothing arrives after an abandon or order
        if e["type"] in ("cart_abandoned", "order_completed"):
            closed.add(e["session_id"])
    assert len(closed) > 100


def test_open_loop_rate_duration_and_bursts() -> None:
    cfg = LoadConfig(
        rate=200, duration_s=5, burst_every_s=1.0, burst_len_s=0.2, burst_factor=5, seed=9
    )
    timed = list(generate(cfg, start=NOW))
    offsets = [o for o, _ in timed]
    assert offsets == sorted(offsets) and offsets[-1] <= 5
    in_burst = sum(1 for o in offsets if o % 1.0 < 0.2)
    outside = len(offsets) - in_burst
    # expected: 5 x 0.2 s x 1000/s = 1000 in bursts, 5 x 0.8 s x 200/s = 800 outside
    assert 850 < in_burst < 1150 and 680 < outside < 920
    burst_rate, base_rate = in_burst / 1.0, outside / 4.0
    assert 3.5 < burst_rate / base_rate < 7
    first = timed[0][1]
    assert first["occurred_at"] == (NOW + timedelta(seconds=offsets[0])).isoformat()


def test_mix_refuses_unknown_kinds_and_empty_shares() -> None:
    with pytest.raises(ValueError, match="unknown event kind"):
        Mix.parse("updated=0.5,refunded=0.5")
    with pytest.raises(ValueError, match="positive sum"):
        Mix.parse("updated=0")


def test_timeline_scales_the_recorded_pace_and_keeps_the_order() -> None:
    at = [0.0, 0.4, 0.8, 0.6, 1.2]  # the fourth was recorded out of order
    events = [
        event(event_id=f"e{i}", session=f"s{i}", at=NOW + timedelta(seconds=s))
        for i, s in enumerate(at)
    ]
    pairs = list(timeline(events, speed=2.0))
    assert [e["event_id"] for _, e in pairs] == [f"e{i}" for i in range(5)]
    assert [round(o, 6) for o, _ in pairs] == [0.0, 0.2, 0.4, 0.4, 0.6]
    assert [o for o, _ in timeline(events, speed=0)] == [0.0] * 5
    fresh = list(
        timeline(events, speed=1.0, retime=True, fresh_ids=True, now=NOW + timedelta(days=1))
    )
    assert fresh[0][1]["event_id"] == "e0-r0" and events[0]["event_id"] == "e0"
    assert fresh[1][1]["occurred_at"] == (NOW + timedelta(days=1, seconds=0.4)).isoformat()


def _queued_event_ids(queue: Queue) -> list[str]:
    return [job.args[0]["event_id"] for job in queue.get_jobs()]


@pytest.mark.integration
def test_sender_puts_the_count_and_mix_on_the_queue(redis_client: redis.Redis) -> None:
    queue = Queue("loadgen-test", connection=redis_client)
    cfg = LoadConfig(rate=None, count=700, seed=5)
    expected = [e for _, e in generate(cfg, start=NOW)]
    stats = Sender(queue, batch=200).run(generate(cfg, start=NOW))
    assert stats.sent == 700 and stats.rejected == 0
    assert queue.count == 700
    jobs = queue.get_jobs()
    assert Counter(j.args[0]["type"] for j in jobs) == Counter(e["type"] for e in expected)
    assert all(j.func_name == "worker.jobs.handle_event" for j in jobs[:5])


@pytest.mark.integration
def test_replay_keeps_file_order_and_scaled_pacing(
    redis_client: redis.Redis, tmp_path: Path
) -> None:
    gaps = [0.0, 0.3, 0.6, 0.45, 0.9]  # seconds after the first; one out of order
    rows = [
        event(event_id=f"r{i}", session=f"s{i}", at=NOW + timedelta(seconds=g))
        for i, g in enumerate(gaps)
    ]
    path = tmp_path / "recorded.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) + "\n{broken\n")
    queue = Queue("replay-test", connection=redis_client)
    stats = Sender(queue, keep_offsets=True).run(timeline(read_events(path), speed=1.5))
    assert stats.sent == 5
    assert stats.event_ids == [f"r{i}" for i in range(5)]
    assert _queued_event_ids(queue) == [f"r{i}" for i in range(5)]  # FIFO = file order
    expected = [0.0, 0.2, 0.4, 0.4, 0.6]  # recorded gaps / 1.5, never going back
    for sent, want in zip(stats.offsets, expected, strict=True):
        assert want - 0.01 <= sent <= want + 0.15, (stats.offsets, expected)

    fast = Queue("replay-fast", connection=redis_client)
    stats = Sender(fast, keep_offsets=True).run(timeline(read_events(path), speed=0))
    assert stats.sent == 5 and max(stats.offsets) < 0.15
    assert _queued_event_ids(fast) == [f"r{i}" for i in range(5)]


def test_random_seed_makes_the_same_stream() -> None:
    cfg = LoadConfig(rate=100, count=50, seed=random.randrange(1000))
    assert [e for _, e in generate(cfg, start=NOW)] == [e for _, e in generate(cfg, start=NOW)]


def test_sender_batches_events_into_jobs_in_order(redis_client: redis.Redis) -> None:
    queue = Queue("loadgen-batch-test", connection=redis_client)
    cfg = LoadConfig(rate=None, count=110, seed=6)
    expected = [e["event_id"] for _, e in generate(cfg, start=NOW)]
    stats = Sender(queue, events_per_job=50).run(generate(cfg, start=NOW))
    assert stats.sent == 110
    jobs = queue.get_jobs()
    assert [len(j.args[0]) for j in jobs] == [50, 50, 10]
    assert all(j.func_name == "worker.jobs.handle_batch" for j in jobs)
    assert [e["event_id"] for j in jobs for e in j.args[0]] == expected  # a session's order kept
