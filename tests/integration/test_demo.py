"""`sgr demo --json` as a user runs it: with a real Redis, and with none (in-process fakeredis)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from testbench.redisproc import free_port

pytestmark = pytest.mark.integration
SGR = str(Path(sys.executable).with_name("sgr"))


def demo(redis_url: str, data_dir: Path) -> dict[str, object]:
    env = {**os.environ, "SGR_REDIS_URL": redis_url, "SGR_ENGINE": "policy"}
    out = subprocess.run(
        [SGR, "demo", "--json", "--sessions", "40", "--data-dir", str(data_dir)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("where", ["real", "none"])
def test_demo_summary(where: str, redis_url: str, tmp_path: Path) -> None:
    url = redis_url if where == "real" else f"redis://127.0.0.1:{free_port()}/0"
    summary = demo(url, tmp_path)
    assert summary["offers"] > 0  # type: ignore[operator]
    assert summary["over_cap"] == 0
    assert summary["dead_letter"] == 3
    assert summary["recorded"] == summary["events"]
    assert summary["published"] == summary["offers"]
    assert ("fakeredis" in str(summary["redis"])) == (where == "none")
    # the demo's holdout experiment and simulated orders end in the lift report
    lift = summary["lift"]
    assert isinstance(lift, dict) and lift["holdout_share"] == 0.2
    groups = lift["groups"]
    assert groups["treatment"]["carts"] > 0
    orders = groups["treatment"]["orders"] + groups["holdout"]["orders"]
    assert orders == summary["simulated_orders"]
    assert summary["no_offer"].get("holdout", 0) == groups["holdout"]["carts"]  # type: ignore[union-attr]
