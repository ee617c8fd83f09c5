"""`sgr retention run` and `sgr retention memory` as an operator runs them: a data folder whose
hot store holds outcomes of 100 days ago and of today, a real redis-server with an old stream
entry and a long rejected list; the old rows land in the cold store's archive, Redis is trimmed,
and the memory report counts what is there."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import redis

from stores.hot import open_hot_store
from tests.conftest import worker_env

SGR = str(Path(sys.executable).with_name("sgr"))


def test_retention_run_moves_old_rows_and_trims_redis(
    redis_url: str, redis_client: redis.Redis, data_dir: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "own"
    folder.mkdir()
    shutil.copyfile(data_dir / "cold.duckdb", folder / "cold.duckdb")  # written: a copy
    hot = open_hot_store("", folder / "hot.sqlite")
    now = datetime.now(UTC)
    for event_id, when in (("old-1", now - timedelta(days=100)), ("new-1", now)):
        with hot.transaction():
            hot.record_outcome(
                event_id=event_id, type="cart_abandoned", outcome="no_offer", reason="low_value",
                occurred_at=when, finished_at=when, attempts=1,
            )  # fmt: skip
    hot.close()
    old_ms = int((now - timedelta(days=30)).timestamp() * 1000)
    for i in range(120):
        redis_client.xadd("sgr:offers", {"offer_id": f"o{i}"}, id=f"{old_ms + i}-0")
    redis_client.rpush("sgr:events:rejected", *[f"r{i}" for i in range(20)])
    env = {
        **os.environ,
        **worker_env(folder),
        "SGR_REDIS_URL": redis_url,
        "SGR_RETENTION_DAYS": "31",
        "SGR_REJECTED_MAX": "5",
    }
    done = subprocess.run(
        [SGR, "retention", "run", "--json"], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["moved"]["processed_events"] == 1 and report["rejected_trimmed"] == 15
    assert report["stream_trimmed"] >= 100  # whole macro nodes of week-old entries
    assert redis_client.llen("sgr:events:rejected") == 5
    hot = open_hot_store("", folder / "hot.sqlite")
    assert hot.get_outcome("old-1") is None and hot.get_outcome("new-1") is not None
    hot.close()
    with duckdb.connect(str(folder / "cold.duckdb"), read_only=True) as cold:
        rows = cold.execute("SELECT event_id FROM archived_processed_events").fetchall()
    assert rows == [("old-1",)]

    memory = subprocess.run(
        [SGR, "retention", "memory", "--json"], env=env, capture_output=True, text=True, timeout=60
    )
    assert memory.returncode == 0, memory.stderr
    figures = json.loads(memory.stdout)
    assert figures["kinds"]["offers_stream"]["keys"] == 1 and figures["used_memory"] > 0
    assert figures["offers_stream_entries"] == 120 - report["stream_trimmed"]
