"""Recovery with real processes: stock `rq worker` subprocesses, a real redis-server, the
StandInLLM (a test double at the edge) made slow so that a job is surely in hand when a signal
arrives. SIGKILL is recovered by the reaper, SIGTERM finishes the job in hand, a redis-server
restart is ridden out, and an offer committed but not published leaves through the outbox."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
import redis
from rq import Queue
from rq.job import Job, JobStatus

from producers.enqueue import enqueue_events
from stores.sqlite import SqliteHotStore
from testbench.fleet import Fleet
from testbench.redisproc import RedisServer, free_port
from testbench.standin_llm import StandInLLM
from tests.conftest import event, make_deps, make_runtime, worker_env
from worker.deadletter import DeadLetters
from worker.domain.events import parse_event
from worker.keys import Keys
from worker.outbox import Outbox
from worker.publish import Publisher
from worker.reaper import Reaper, stats
from worker.runner import process
from worker.runtime import Runtime
from worker.settings import Settings

pytestmark = pytest.mark.integration
QUEUE = "cart-events"
KEYS = Keys.from_settings(Settings())


def wait_for(check: Callable[[], object], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def abandoned(n: int) -> dict[str, object]:
    return event(event_id=f"e{n}", session=f"s{n}", user=f"u{n:06d}", value=150.0)


def llm_env(data_dir: Path, llm: StandInLLM, **extra: str) -> dict[str, str]:
    return worker_env(
        data_dir,
        SGR_ENGINE="vllm",
        SGR_LLM_URL=llm.url,
        SGR_LLM_MODEL="stand-in",
        SGR_LLM_TIMEOUT_S="10",
        **extra,
    )


def runtime_for(data_dir: Path, client: redis.Redis) -> Runtime:
    """What `sgr reap` holds: the stores and the publisher (the engine is not used)."""
    return make_runtime(data_dir, client)


def test_sigkilled_job_is_rerun_once_by_the_reaper(
    redis_url: str, redis_client: redis.Redis, data_dir: Path
) -> None:
    q = Queue(QUEUE, connection=redis_client)
    with StandInLLM(latency_s=1.5) as llm:
        fleet = Fleet(1, redis_url, QUEUE, llm_env(data_dir, llm, SGR_REAP_INTERVAL_S="0"))
        with fleet:
            job_id = enqueue_events(q, [abandoned(1)]).job_ids[0]
            wait_for(lambda: llm.requests, 20, "the LLM request")
            fleet.procs[0].send_signal(signal.SIGKILL)
            fleet.procs[0].wait()
            job = Job.fetch(job_id, connection=redis_client)
            assert job.get_status() == JobStatus.STARTED  # RQ alone leaves it there for 180 s

            report = Reaper(runtime_for(data_dir, redis_client)).reap()
            assert report.requeued == [job_id] and len(report.dead_workers) == 1
            job.refresh()
            assert job.get_status() == JobStatus.QUEUED and job.retries_left == 1
            with llm.lock:
                llm.latency_s = 0.0
            fleet.spawn()
            wait_for(lambda: job.get_status() == JobStatus.FINISHED, 30, "the re-run")
    hot = SqliteHotStore(data_dir / "hot.sqlite")
    outcome = hot.get_outcome("e1")
    assert outcome is not None and outcome.outcome == "offer" and outcome.attempts == 2
    assert redis_client.xlen("sgr:offers") == 1
    assert stats(redis_client, KEYS)["requeued"] == 1


def test_workers_reap_a_killed_peer_on_their_own(
    redis_url: str, redis_client: redis.Redis, data_dir: Path
) -> None:
    q = Queue(QUEUE, connection=redis_client)
    with StandInLLM(latency_s=1.0) as llm:
        env = llm_env(data_dir, llm, SGR_REAP_INTERVAL_S="0.3")
        with Fleet(2, redis_url, QUEUE, env) as fleet:
            enqueue_events(q, [abandoned(n) for n in range(1, 5)])
            wait_for(lambda: len(llm.requests) >= 2, 30, "two jobs in hand")
            fleet.procs[0].send_signal(signal.SIGKILL)
            fleet.procs[0].wait()
            hot = SqliteHotStore(data_dir / "hot.sqlite")
            wait_for(
                lambda: hot.summary()["events"] >= 4 and q.started_job_registry.count == 0,
                40,
                "all four events",
            )
    outcomes = [hot.get_outcome(f"e{n}") for n in range(1, 5)]
    assert all(o is not None and o.outcome == "offer" for o in outcomes)
    assert redis_client.xlen("sgr:offers") == 4
    assert stats(redis_client, KEYS).get("requeued", 0) >= 1


def test_abandoned_job_out_of_attempts_becomes_a_dead_letter(
    redis_url: str, redis_client: redis.Redis, data_dir: Path
) -> None:
    q = Queue(QUEUE, connection=redis_client)
    with StandInLLM(latency_s=5.0) as llm:
        fleet = Fleet(1, redis_url, QUEUE, llm_env(data_dir, llm, SGR_REAP_INTERVAL_S="0"))
        with fleet:
            job_id = enqueue_events(q, [abandoned(1)], max_attempts=1).job_ids[0]
            wait_for(lambda: llm.requests, 20, "the LLM request")
            fleet.procs[0].send_signal(signal.SIGKILL)
            fleet.procs[0].wait()
            report = Reaper(runtime_for(data_dir, redis_client)).reap()
    assert report.dead_lettered == ["e1"] and report.requeued == []
    assert Job.fetch(job_id, connection=redis_client).get_status() == JobStatus.FAILED
    letters = DeadLetters(redis_client, "sgr:dead-letters").list()
    assert [lt.event_id for lt in letters] == ["e1"] and "AbandonedJobError" in letters[0].error
    outcome = SqliteHotStore(data_dir / "hot.sqlite").get_outcome("e1")
    assert outcome is not None and outcome.outcome == "dead_letter"


def test_sigterm_finishes_the_job_in_hand(
    redis_url: str, redis_client: redis.Redis, data_dir: Path
) -> None:
    q = Queue(QUEUE, connection=redis_client)
    with StandInLLM(latency_s=2.0) as llm:
        fleet = Fleet(1, redis_url, QUEUE, llm_env(data_dir, llm)).start()
        job_id = enqueue_events(q, [abandoned(1), abandoned(2)]).job_ids[0]
        wait_for(lambda: llm.requests, 20, "the LLM request")
        fleet.procs[0].send_signal(signal.SIGTERM)
        assert fleet.procs[0].wait(timeout=20) == 0
    assert Job.fetch(job_id, connection=redis_client).get_status() == JobStatus.FINISHED
    outcome = SqliteHotStore(data_dir / "hot.sqlite").get_outcome("e1")
    assert outcome is not None and outcome.outcome == "offer"
    assert redis_client.xlen("sgr:offers") == 1
    assert q.count == 1  # the second event waits for the next worker


def test_redis_restart_is_ridden_out(data_dir: Path) -> None:
    with RedisServer(appendonly=True) as server, StandInLLM(latency_s=0.2) as llm:
        client = redis.Redis.from_url(server.url)
        q = Queue(QUEUE, connection=client)
        env = llm_env(data_dir, llm, SGR_REAP_INTERVAL_S="0.5")
        fleet = Fleet(2, server.url, QUEUE, env).start()
        try:
            enqueue_events(q, [abandoned(n) for n in range(1, 25)])
            hot = SqliteHotStore(data_dir / "hot.sqlite")
            wait_for(lambda: hot.summary()["events"] >= 4, 30, "some progress")
            server.stop()
            time.sleep(1.5)  # workers see a refused connection, then redis-server is back
            server.start()
            restarted = 0
            deadline = time.monotonic() + 60
            while hot.summary()["events"] < 24 or q.started_job_registry.count:
                assert time.monotonic() < deadline, "the queue did not drain after the restart"
                for proc in list(fleet.procs):  # what a supervisor does (Restart=always)
                    if proc.poll() is not None and proc.returncode != 0:
                        fleet.procs.remove(proc)
                        fleet.spawn()
                        restarted += 1
                time.sleep(0.1)
        finally:
            fleet.stop()
        offers = {o for o in (hot.get_outcome(f"e{n}") for n in range(1, 25)) if o}
        assert len(offers) == 24
        assert client.xlen("sgr:offers") == 24  # the queue survived (AOF), nothing doubled
        assert hot.unpublished_offers() == []


def test_offer_committed_but_not_published_leaves_through_the_outbox(
    redis_client: redis.Redis, redis_url: str, data_dir: Path
) -> None:
    # A publisher whose Redis is unreachable (nothing listens on the port): the commit happens,
    # the publish fails, as in a crash between the two.
    deps = make_deps(data_dir)
    down = redis.Redis(port=free_port(), socket_connect_timeout=0.2)
    keys = Keys.from_settings(Settings())
    broken = replace(deps, outbox=Outbox(deps.hot, Publisher(down, keys), deps.clock))
    with pytest.raises(redis.ConnectionError):
        process(parse_event(abandoned(1)), broken)
    assert len(deps.hot.unpublished_offers()) == 1

    report = Reaper(runtime_for(data_dir, redis_client)).reap()
    assert report.published == 1 + 1  # the offer and the event's outcome
    assert deps.hot.unpublished_offers() == [] and deps.hot.unpublished_outcomes() == []
    assert redis_client.xlen("sgr:offers") == 1 and redis_client.xlen("sgr:outcomes") == 1
    again = process(parse_event(abandoned(1)), deps)  # a re-run publishes nothing twice
    assert again.replayed and redis_client.xlen("sgr:offers") == 1
    assert redis_client.xlen("sgr:outcomes") == 1


def test_offers_lost_in_a_redis_crash_are_published_again_once(data_dir: Path) -> None:
    """Redis without persistence, SIGKILLed: the worst loss a crash can cause. The reaper sees a
    new run_id, finds the offers whose markers are gone and publishes them again, once; while
    Redis keeps running it does not re-read the window on every pass."""
    with RedisServer(appendonly=False) as server:
        client = redis.Redis.from_url(server.url)
        deps = make_deps(data_dir, client)
        for n in (1, 2, 3):
            assert process(parse_event(abandoned(n)), deps).outcome == "offer"
        reaper = Reaper(runtime_for(data_dir, client))
        assert reaper.reap().republished == 0  # first pass: checked, nothing lost

        def exists_calls() -> int:
            stats_ = client.info("commandstats")
            return int(stats_.get("cmdstat_exists", {}).get("calls", 0))  # type: ignore[union-attr]

        checked = exists_calls()
        assert checked >= 3
        assert reaper.reap().republished == 0
        assert exists_calls() == checked  # same Redis, check not due: no re-read

        server.kill()
        server.start()
        assert client.xlen("sgr:offers") == 0  # the crash took the stream with it
        assert reaper.reap().republished == 3 + 3  # the offers, and their events' outcomes
        assert reaper.reap().republished == 0
        for stream in ("sgr:offers", "sgr:outcomes"):
            entries = client.xrange(stream)
            assert sorted(f[b"event_id"].decode() for _id, f in entries) == ["e1", "e2", "e3"]
        assert stats(client, KEYS)["republished"] == 3 + 3


def test_a_batch_killed_on_its_last_attempt_leaves_a_requeueable_dead_letter_per_event(
    redis_url: str, redis_client: redis.Redis, data_dir: Path
) -> None:
    """A batch job of 20 whose worker is killed with SIGKILL: the reaper files one dead letter
    per event, each with its whole payload (not the job's clipped one), and each one's outcome."""
    q = Queue(QUEUE, connection=redis_client)
    events = [abandoned(n) for n in range(1, 21)]
    with StandInLLM(latency_s=5.0) as llm:
        fleet = Fleet(1, redis_url, QUEUE, llm_env(data_dir, llm, SGR_REAP_INTERVAL_S="0"))
        with fleet:
            enqueue_events(q, events, max_attempts=1, batch_size=20)
            wait_for(lambda: llm.requests, 20, "the LLM requests")
            fleet.procs[0].send_signal(signal.SIGKILL)
            fleet.procs[0].wait()
            report = Reaper(runtime_for(data_dir, redis_client)).reap()
    ids = [f"e{n}" for n in range(1, 21)]
    assert sorted(report.dead_lettered) == sorted(ids)
    letters = DeadLetters(redis_client, "sgr:dead-letters").list()
    assert sorted(lt.event_id for lt in letters) == sorted(ids)
    by_id = {lt.event_id: lt for lt in letters}
    for sent in events:  # the whole event, as sent: `sgr dead-letters requeue` takes it back
        assert by_id[str(sent["event_id"])].payload == sent
    hot = SqliteHotStore(data_dir / "hot.sqlite")
    for event_id in ids:
        outcome = hot.get_outcome(event_id)
        assert outcome is not None and outcome.outcome == "dead_letter"
