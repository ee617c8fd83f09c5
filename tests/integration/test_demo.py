"""`sgr demo --json` as a user runs it: on a redis-server of its own (never the Redis that
SGR_REDIS_URL names, which it did not start), on a Redis named by --redis-url, and on in-process
fakeredis where no redis-server is installed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import redis

pytestmark = pytest.mark.integration
SGR = str(Path(sys.executable).with_name("sgr"))


def demo(data_dir: Path, *args: str, **env: str) -> dict[str, object]:
    out = subprocess.run(
        [SGR, "demo", "--json", "--sessions", "40", "--data-dir", str(data_dir), *args],
        env={**os.environ, "SGR_ENGINE": "policy", **env},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def check(summary: dict[str, object]) -> None:
    assert summary["offers"] > 0  # type: ignore[operator]
    assert summary["over_cap"] == 0
    assert summary["dead_letter"] == 3
    assert summary["recorded"] == summary["events"]
    assert summary["published"] == summary["offers"]
    # the demo's holdout experiment and simulated orders end in the lift report
    lift = summary["lift"]
    assert isinstance(lift, dict) and lift["holdout_share"] == 0.2
    groups = lift["groups"]
    assert groups["treatment"]["carts"] > 0
    orders = groups["treatment"]["orders"] + groups["holdout"]["orders"]
    assert orders == summary["simulated_orders"]
    assert summary["no_offer"].get("holdout", 0) == groups["holdout"]["carts"]  # type: ignore[union-attr]


def test_the_demo_never_touches_the_redis_of_sgr_redis_url(
    redis_client: redis.Redis, redis_url: str, tmp_path: Path
) -> None:
    """SGR_REDIS_URL names a Redis the demo did not start (on 6379 on a developer's machine, a
    real one): the demo runs on a redis-server of its own and leaves that one as it found it."""
    redis_client.set("shop:key", "mine")
    summary = demo(tmp_path, SGR_REDIS_URL=redis_url)
    check(summary)
    assert "redis-server of its own" in str(summary["redis"])
    assert redis_url not in str(summary["redis"])
    assert redis_client.keys("*") == [b"shop:key"]  # nothing written, nothing flushed


def test_the_demo_uses_a_redis_only_when_named_by_redis_url(
    redis_client: redis.Redis, redis_url: str, tmp_path: Path
) -> None:
    summary = demo(tmp_path, "--redis-url", redis_url)
    check(summary)
    assert "--redis-url" in str(summary["redis"])
    offers = [e for _, e in redis_client.xrange("sgr-demo:offers") if e[b"type"] == b"offer"]
    assert len(offers) == summary["offers"]  # beside them, the void notices of orders
    assert {k.decode().split(":")[0] for k in redis_client.keys("*")} <= {"sgr-demo", "rq"}


def test_the_demo_runs_on_fakeredis_where_no_redis_server_is_installed(tmp_path: Path) -> None:
    path = tmp_path / "bin"  # a PATH without redis-server
    path.mkdir()
    summary = demo(tmp_path / "data", PATH=str(path))
    check(summary)
    assert "fakeredis" in str(summary["redis"])


def test_an_unreachable_redis_url_is_one_line_without_its_password(tmp_path: Path) -> None:
    from testbench.redisproc import free_port

    url = f"redis://:hunter2-do-not-print@127.0.0.1:{free_port()}/0"
    out = subprocess.run(
        [SGR, "demo", "--sessions", "5", "--data-dir", str(tmp_path), "--redis-url", url],
        env={**os.environ, "SGR_ENGINE": "policy"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 1
    assert out.stderr.count("\n") == 1 and "--redis-url" in out.stderr, out.stderr
    assert "hunter2" not in out.stdout + out.stderr


def test_make_demo_s_script_runs_on_its_own_redis_too(
    redis_client: redis.Redis, redis_url: str, tmp_path: Path
) -> None:
    """deploy/vllm/demo.sh (`make demo`), on the rules engine (DEMO_LLM=0): the same."""
    import shutil

    uv = shutil.which("uv")
    if uv is None:
        pytest.skip("uv is not on PATH (make demo installs it)")
    script = Path(__file__).resolve().parents[2] / "deploy" / "vllm" / "demo.sh"
    out = subprocess.run(
        ["bash", str(script), "--json", "--sessions", "10", "--data-dir", str(tmp_path)],
        env={**os.environ, "DEMO_LLM": "0", "UV": uv, "SGR_REDIS_URL": redis_url},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    assert summary["offers"] > 0 and "redis-server of its own" in summary["redis"]
    assert redis_client.keys("*") == []
