"""`sgr status` against a real redis-server: queue, outcomes, stream and the snapshot's age."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis
from typer.testing import CliRunner

from worker.cli import app

pytestmark = pytest.mark.integration


def test_status_reports_the_queue_the_stream_and_the_snapshot(
    redis_client: redis.Redis, redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runner = CliRunner()
    setup = runner.invoke(app, ["setup-data", "--data-dir", str(tmp_path), "--customers", "20"])
    assert setup.exit_code == 0, setup.output
    redis_client.xadd("sgr:offers", {"offer_id": "o1"})
    monkeypatch.setenv("SGR_REDIS_URL", redis_url)
    result = runner.invoke(app, ["status", "--data-dir", str(tmp_path)])
    out = " ".join(result.output.split())
    assert result.exit_code == 0, out
    assert "'queued': 0" in out and "'stream': 1" in out
    assert "'history_snapshot': {" in out and "'stale': False" in out


def test_status_json_agrees_with_dead_letters(
    redis_client: redis.Redis, redis_url: str, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json

    from tests.conftest import make_runtime
    from worker.jobs import dead_letter

    monkeypatch.setenv("SGR_REDIS_URL", redis_url)
    monkeypatch.setenv("SGR_DATA_DIR", str(data_dir))
    runtime = make_runtime(data_dir, redis_client)
    for n in range(3):
        dead_letter(runtime, {"event_id": f"d{n}", "type": "nope"}, "type: bad", None)
    runner = CliRunner()
    status = runner.invoke(app, ["status", "--json"])
    assert status.exit_code == 0, status.output
    figures = json.loads(status.output)
    listed = runner.invoke(app, ["dead-letters", "--json"])
    letters = [json.loads(line) for line in listed.output.splitlines() if line.strip()]
    assert figures["dead_letter"] == figures["dead_letter_list"] == len(letters) == 3
    assert figures["store_failures"] == 0
    # each dead letter is on the outcome stream, none left for the reaper
    assert figures["outcome_stream"] == 3 and figures["outcomes_unpublished"] == 0
