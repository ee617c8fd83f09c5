"""docs/examples/shop_client.mjs, the API's example client in another language (Node.js, only
HTTP), run as a shop runs it against a live `sgr api` and a stock `rq worker`: an abandonment
and a refused event sent, the outcome polled until final, the live offers read, the code
verified and redeemed (a replay under the same Idempotency-Key, a second redemption 409)."""

from __future__ import annotations

import json
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis

from testbench.apiproc import ApiServer
from testbench.fleet import Fleet
from tests.conftest import worker_env
from worker.api.apikeys import KeyRing
from worker.keys import Keys
from worker.settings import Settings

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("node") is None, reason="node is not on PATH (Node.js 18+)"),
]

CLIENT = Path(__file__).parents[2] / "docs" / "examples" / "shop_client.mjs"


def test_the_node_example_client_walks_the_api_with_only_http(
    data_dir: Path, redis_url: str, redis_client: redis.Redis
) -> None:
    ring = KeyRing(redis_client, Keys.from_settings(Settings()))
    producer, _ = ring.create("producer", "shop backend", datetime.now(UTC))
    checkout, _ = ring.create("checkout", "checkout", datetime.now(UTC))
    env = worker_env(data_dir, SGR_REDIS_URL=redis_url)  # SGR_OFFER_DELAY_MINUTES=0
    workers = Fleet(1, redis_url, "cart-events", env).start()
    try:
        with ApiServer(env) as api:
            done = subprocess.run(
                [str(shutil.which("node")), str(CLIENT), "u000001"],
                env={"PATH": "/usr/bin:/bin", "SHOP_API": api.url, "SHOP_WAIT_S": "60"}
                | {"SHOP_PRODUCER_KEY": producer, "SHOP_CHECKOUT_KEY": checkout},
                capture_output=True,
                text=True,
                timeout=120,
            )
    finally:
        workers.stop()
    assert done.returncode == 0, done.stdout + done.stderr
    steps = {s["step"]: s for s in map(json.loads, done.stdout.splitlines())}
    assert steps["outcome"]["body"]["outcome"] == "offer", done.stdout
    assert steps["refused"]["body"]["errors"][0]["field"] == "cart.value"
    assert steps["replay"]["body"] == steps["redeem"]["body"]
    assert steps["redeem again"]["status"] == 409
    assert steps["done"] == {"step": "done", "ok": True}
