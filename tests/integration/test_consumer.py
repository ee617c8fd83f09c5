"""The shop's consumer (producers/consumer.py) on a real redis-server: two consumers in one group,
one dies mid-way, the other claims its pending entries (XAUTOCLAIM); every offer handled once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from decimal import Decimal
from typing import Any

import pytest
import redis

from producers.consumer import Consumer, parse_entry
from worker.domain.model import STREAM_FIELDS

pytestmark = pytest.mark.integration
STREAM = "sgr:offers"


def add_offers(client: redis.Redis, n: int, start: int = 0) -> list[str]:
    ids = []
    for i in range(start, start + n):
        entry = {name: "" for name in STREAM_FIELDS}
        entry.update(offer_id=f"o{i}", discount_pct="7.25", cap_pct="12.0", model="")
        client.xadd(STREAM, entry)  # type: ignore[arg-type]
        ids.append(f"o{i}")
    return ids


class Died(BaseException):
    """The consumer's process ended in the middle of its work."""


def test_a_dead_consumers_entries_are_claimed_and_each_offer_handled_once(
    redis_client: redis.Redis,
) -> None:
    ids = add_offers(redis_client, 60)
    handled: list[str] = []

    def handle_until_death(offer: dict[str, Any]) -> None:
        if len(handled) == 7:
            raise Died  # after 7 offers, with the rest of its batch of 20 taken and not acked
        handled.append(offer["offer_id"])

    c1 = Consumer(redis_client, "shop", "c1", claim_idle_s=0.3, handle=handle_until_death)
    c1.ensure_group()
    with pytest.raises(Died):
        c1.step(block_ms=100, count=20)
    pending: Any = redis_client.xpending(STREAM, "shop")
    assert pending["pending"] == 13 and pending["consumers"][0]["name"] == b"c1"

    c2 = Consumer(
        redis_client, "shop", "c2", claim_idle_s=0.3, handle=lambda o: handled.append(o["offer_id"])
    )
    assert c2.claim() == 0  # not idle long enough yet: c1 might still be working on them
    time.sleep(0.4)
    while c2.step(block_ms=100, count=20):
        pass
    assert sorted(handled) == sorted(ids) and len(handled) == len(set(handled))
    assert redis_client.xpending(STREAM, "shop")["pending"] == 0  # type: ignore[index]


def test_entries_are_typed_as_documented(redis_client: redis.Redis) -> None:
    add_offers(redis_client, 1)
    ((_id, fields),) = redis_client.xrange(STREAM)  # type: ignore[misc]
    offer = parse_entry(fields)
    assert offer["discount_pct"] == Decimal("7.25") and offer["cap_pct"] == Decimal("12.0")
    assert offer["model"] is None and set(STREAM_FIELDS) <= set(offer)


def test_the_example_program_runs_and_handles_each_offer_once(
    redis_client: redis.Redis, redis_url: str
) -> None:
    add_offers(redis_client, 5)
    command = [sys.executable, "-m", "producers.consumer", "--group", "shop", "--count", "5"]
    env = {**os.environ, "SGR_REDIS_URL": redis_url}
    first = subprocess.run(
        [*command, "--consumer", "c1"], env=env, capture_output=True, text=True, timeout=60
    )
    assert first.returncode == 0, first.stderr
    printed = [json.loads(line)["offer_id"] for line in first.stdout.splitlines()]
    assert printed == [f"o{i}" for i in range(5)]
    # the same offers redelivered (say, read again after a crash before XACK) are not re-handled
    redis_client.xgroup_setid(STREAM, "shop", "0")
    again = subprocess.run(
        [*command, "--consumer", "c2"], env=env, capture_output=True, text=True, timeout=60
    )
    assert again.returncode == 0 and again.stdout == ""
