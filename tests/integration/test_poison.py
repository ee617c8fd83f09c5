"""Hostile and broken items on the queue, with a real redis-server and real `sgr worker`
subprocesses: a job naming any function but the project's runs nothing and leaves a dead letter;
poison (non-UTF-8, unreadable job hashes) is moved aside and the events behind it are processed;
a store failure leaves no password in the worker's log or in Redis."""

from __future__ import annotations

import base64
import json
import os
import pickle
import subprocess
import sys
import zlib
from pathlib import Path
from typing import Any

import pytest
import redis
from rq import Queue

from producers.bridge import Bridge
from producers.enqueue import enqueue_events
from tests.conftest import event, make_runtime, worker_env
from worker.keys import Keys
from worker.reaper import Reaper
from worker.settings import Settings

pytestmark = pytest.mark.integration
SGR = str(Path(sys.executable).with_name("sgr"))
QUEUE = "cart-events"


def sgr_worker(
    redis_url: str, data_dir: Path, timeout_s: float = 120, **extra: str
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **worker_env(data_dir, **extra), "SGR_REDIS_URL": redis_url}
    env["SGR_REAP_INTERVAL_S"] = env.get("SGR_REAP_INTERVAL_S", "0")
    return subprocess.run(
        [SGR, "worker", "--burst"], env=env, capture_output=True, text=True, timeout=timeout_s
    )


def rq_worker(redis_url: str, data_dir: Path) -> subprocess.CompletedProcess[str]:
    """The documented stock command (docs/operations.md)."""
    rq = str(Path(sys.executable).with_name("rq"))
    env = {**os.environ, **worker_env(data_dir), "SGR_REDIS_URL": redis_url}
    env["SGR_REAP_INTERVAL_S"] = "0"
    cmd = [rq, "worker", "-w", "worker.safejob.SafeWorker", "--url", redis_url, "--burst", QUEUE]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)


def letters(client: redis.Redis) -> list[dict[str, Any]]:
    return [json.loads(x) for x in client.lrange("sgr:dead-letters", 0, -1)]  # type: ignore[union-attr]


def alerts(client: redis.Redis) -> dict[str, int]:
    raw: Any = client.hgetall(Keys.from_settings(Settings()).queue_alerts)
    return {k.decode(): int(v) for k, v in raw.items()}


def outcomes(data_dir: Path, client: redis.Redis, *event_ids: str) -> dict[str, str | None]:
    runtime = make_runtime(data_dir, client)
    try:
        found = {e: runtime.deps.hot.get_outcome(e) for e in event_ids}
        return {e: (o.outcome if o else None) for e, o in found.items()}
    finally:
        runtime.deps.hot.close()


@pytest.mark.parametrize("command", ["sgr", "rq"])
def test_a_job_naming_a_foreign_function_runs_nothing(
    redis_client: redis.Redis, redis_url: str, data_dir: Path, tmp_path: Path, command: str
) -> None:
    target = tmp_path / "made-by-a-job"
    queue = Queue(QUEUE, connection=redis_client)
    queue.enqueue("os.makedirs", str(target))
    queue.enqueue("worker.jobs.handle_evnt", event(event_id="typo"))  # a missing function
    queue.enqueue("worker.jobs.refuse", "x", None, None)  # the refusal itself is no job function
    enqueue_events(queue, [event(event_id="after")])
    done = sgr_worker(redis_url, data_dir) if command == "sgr" else rq_worker(redis_url, data_dir)
    assert done.returncode == 0, done.stderr[-2000:]
    assert not target.exists()
    found = letters(redis_client)
    refused = [x for x in found if x["error"].startswith("refused:")]
    assert len(refused) == 3, found
    assert any(
        "'os.makedirs' is not one of the project's job functions" in x["error"] for x in refused
    )
    assert any(x["payload"].get("function") == "worker.jobs.handle_evnt" for x in refused)
    assert alerts(redis_client)["refused_jobs"] == 3
    assert outcomes(data_dir, redis_client, "after")["after"] in ("offer", "no_offer")


def test_a_pickle_that_names_a_function_is_never_loaded(
    redis_client: redis.Redis, redis_url: str, data_dir: Path, tmp_path: Path
) -> None:
    """A job hash whose data is a pickle calling os.makedirs while it loads."""
    target = tmp_path / "made-by-unpickling"

    class Boom:
        def __reduce__(self) -> Any:
            return (os.makedirs, (str(target),))

    queue = Queue(QUEUE, connection=redis_client)
    job = queue.enqueue("worker.jobs.handle_event", event(event_id="x1"))
    data = zlib.compress(pickle.dumps(("worker.jobs.handle_event", None, (Boom(),), {})))
    redis_client.hset(f"rq:job:{job.id}", "data", data)
    enqueue_events(queue, [event(event_id="after2")])
    done = sgr_worker(redis_url, data_dir)
    assert done.returncode == 0, done.stderr[-2000:]
    assert not target.exists()
    found = letters(redis_client)
    assert len(found) == 1 and "job data unreadable" in found[0]["error"], done.stderr[-3000:]
    assert found[0]["payload"]["raw_b64"]
    assert outcomes(data_dir, redis_client, "after2")["after2"] in ("offer", "no_offer")


def test_non_utf8_on_the_queue_is_moved_aside_and_the_events_behind_it_run(
    redis_client: redis.Redis, redis_url: str, data_dir: Path
) -> None:
    queue = Queue(QUEUE, connection=redis_client)
    poison = b"\xff\xfe not a job \xc3"
    redis_client.rpush(f"rq:queue:{QUEUE}", poison)
    job = queue.enqueue("worker.jobs.handle_event", event(event_id="hashbad"))
    redis_client.hset(f"rq:job:{job.id}", "origin", b"\xff\xfe")  # a hash RQ cannot decode
    enqueue_events(queue, [event(event_id="b1", session="s1"), event(event_id="b2", session="s2")])
    done = sgr_worker(redis_url, data_dir)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Traceback" not in done.stderr and "unhandled exception" not in done.stderr
    found = letters(redis_client)
    raw = [x for x in found if x["payload"].get("raw_b64")]
    assert len(raw) == 2, found
    assert base64.b64decode(raw[0]["payload"]["raw_b64"]) == poison
    assert "not UTF-8" in raw[0]["error"]
    assert "job hash unreadable" in raw[1]["error"]
    assert alerts(redis_client)["poison_items"] == 2
    assert set(outcomes(data_dir, redis_client, "b1", "b2").values()) <= {"offer", "no_offer"}
    assert redis_client.llen(f"rq:queue:{QUEUE}:intermediate") == 0


def test_the_reaper_and_sgr_reap_keep_working_past_poison(
    redis_client: redis.Redis, redis_url: str, data_dir: Path
) -> None:
    """Poison left on RQ's intermediate list (a stock worker quit on it) and a failed job whose
    data cannot be read: the reaper moves both aside and goes on."""
    queue = Queue(QUEUE, connection=redis_client)
    redis_client.rpush(f"rq:queue:{QUEUE}:intermediate", b"\xff\xfe\xfd")
    job = queue.enqueue("worker.jobs.handle_event", event(event_id="f1"))
    queue.failed_job_registry.add(job, ttl=600, exc_string="boom")
    redis_client.hset(f"rq:job:{job.id}", "data", b"\x80\x05junk")
    reaper = Reaper(make_runtime(data_dir, redis_client), stuck_after_s=0)
    first = reaper.reap()
    second = reaper.reap()
    assert first.skipped is False and second.skipped is False
    found = letters(redis_client)
    assert sum(1 for x in found if x["payload"].get("raw_b64")) == 2, found
    assert redis_client.llen(f"rq:queue:{QUEUE}:intermediate") == 0
    env = {**os.environ, **worker_env(data_dir), "SGR_REDIS_URL": redis_url}
    ran = subprocess.run([SGR, "reap"], env=env, capture_output=True, text=True, timeout=120)
    assert ran.returncode == 0, ran.stderr
    assert len(letters(redis_client)) == len(found)  # each moved aside once


def test_the_bridge_enqueues_the_events_behind_poison(
    redis_client: redis.Redis, redis_url: str, data_dir: Path
) -> None:
    keys = Keys.from_settings(Settings())
    nested = "[" * 100_000 + "]" * 100_000
    redis_client.rpush(keys.events_in, json.dumps(event(event_id="g1", session="s1")))
    redis_client.rpush(keys.events_in, nested)
    redis_client.rpush(keys.events_in, b"\xff{not utf-8")
    redis_client.rpush(keys.events_in, "[" * 40 + "]" * 40)  # parses, too deep for any event
    redis_client.rpush(keys.events_in, json.dumps(event(event_id="g2", session="s2")))
    bridge = Bridge(
        redis_client,
        QUEUE,
        keys.events_in,
        keys.events_rejected,
        dead_letters=keys.dead_letters,
        alerts=keys.queue_alerts,
    )
    totals = bridge.run(once=True)
    assert totals["enqueued"] == 2 and totals["poison"] == 3, totals
    found = letters(redis_client)
    assert len(found) == 3
    assert {base64.b64decode(x["payload"]["raw_b64"])[:1] for x in found} == {b"[", b"\xff"}
    assert alerts(redis_client)["poison_items"] == 3
    done = sgr_worker(redis_url, data_dir)
    assert done.returncode == 0, done.stderr[-2000:]
    assert set(outcomes(data_dir, redis_client, "g1", "g2").values()) <= {"offer", "no_offer"}


PASSWORD = "Pw-0f-the-store-9c41"


@pytest.mark.parametrize(
    "dsn",
    [
        f"postgresql://sgr:{PASSWORD}@127.0.0.1:1/sgr?sslpassword={PASSWORD}",
        f"host=127.0.0.1 port=1 user=sgr password={PASSWORD} dbname=sgr",
        f"host=127.0.0.1 port=1 password='{PASSWORD} x' dbname=sgr",
    ],
)
def test_a_store_failure_leaves_no_password_in_the_log_or_in_redis(
    redis_client: redis.Redis, redis_url: str, data_dir: Path, dsn: str
) -> None:
    password = PASSWORD
    queue = Queue(QUEUE, connection=redis_client)
    enqueue_events(queue, [event(event_id="p1")])
    done = sgr_worker(redis_url, data_dir, timeout_s=60, SGR_HOT_STORE_URL=dsn)
    assert done.returncode != 0
    assert password not in done.stdout + done.stderr
    assert "127.0.0.1" in done.stdout + done.stderr  # it does say which store failed
    assert "***" in done.stdout + done.stderr or "postgresql://" in dsn
    # the stock command: the first job finds the store unusable
    rq = str(Path(sys.executable).with_name("rq"))
    env = {**os.environ, **worker_env(data_dir), "SGR_REDIS_URL": redis_url}
    env.update(SGR_HOT_STORE_URL=dsn, SGR_REAP_INTERVAL_S="0")
    cmd = [rq, "worker", "-w", "worker.safejob.SafeWorker", "--url", redis_url, "--burst", QUEUE]
    ran = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert password not in ran.stdout + ran.stderr
    for key in redis_client.scan_iter("*"):
        kind = redis_client.type(key)
        if kind == b"string":
            values = [redis_client.get(key)]
        elif kind == b"hash":
            values = list(redis_client.hgetall(key).values())  # type: ignore[union-attr]
        elif kind == b"list":
            values = list(redis_client.lrange(key, 0, -1))  # type: ignore[union-attr]
        elif kind == b"zset":
            values = [m for m, _ in redis_client.zrange(key, 0, -1, withscores=True)]  # type: ignore[union-attr]
        elif kind == b"stream":
            values = [v for _, f in redis_client.xrange(key) for v in f.values()]  # type: ignore[union-attr]
        else:
            values = []
        for value in values:
            data = value if isinstance(value, bytes) else str(value).encode()
            for blob in (data, _inflate(data)):
                assert password.encode() not in blob, key


def _inflate(data: bytes) -> bytes:
    try:
        return zlib.decompress(data)
    except zlib.error:
        return b""


def test_sgr_produce_names_each_bad_line_and_sends_the_rest(
    redis_client: redis.Redis, redis_url: str, data_dir: Path, tmp_path: Path
) -> None:
    lines = [
        json.dumps(event(event_id="ok1", session="s1")).encode(),
        b"\xff\xfe{",
        b"[" * 50_000 + b"]" * 50_000,
        b"{not json",
        json.dumps(event(event_id="ok2", session="s2")).encode(),
    ]
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    env = {**os.environ, **worker_env(data_dir), "SGR_REDIS_URL": redis_url}
    ran = subprocess.run(
        [SGR, "produce", "--file", str(path), "--json"],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert ran.returncode == 1
    assert json.loads(ran.stdout)["enqueued"] == 2
    errors = ran.stderr.strip().splitlines()
    assert errors == [
        "rejected line 2: not UTF-8 (invalid start byte at column 1)",
        "rejected line 3: JSON nested deeper than 32 levels",
        "rejected line 4: not JSON (Expecting property name enclosed in double quotes at column 2)",
    ]
    assert redis_client.llen(f"rq:queue:{QUEUE}") == 2
