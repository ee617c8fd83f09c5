"""The shop's consumer (producers/consumer.py) on a real redis-server: every entry type (offers,
replies with their empty numbers, void notices, outcomes, a type it does not know), two consumers
in one group where one dies mid-way and the other claims its entries (XAUTOCLAIM), a poison entry
set aside after N deliveries without blocking the group, a consumer killed between its effect and
its XACK, and the example program SIGKILLed mid-stream and restarted: every entry's effect exactly
once."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from decimal import Decimal
from typing import Any

import pytest
import redis

from producers.consumer import Consumer, ConsumerKeys, EntryError, parse_entry
from worker.domain.model import STREAM_FIELDS

pytestmark = pytest.mark.integration
OFFERS, OUTCOMES = "sgr:offers", "sgr:outcomes"
KEYS = ConsumerKeys("sgr:consumer:shop")


def offer(i: int, **change: str) -> dict[str, str]:
    entry = {name: "" for name in STREAM_FIELDS}
    entry.update(
        type="offer", offer_id=f"o{i}", event_id=f"e{i}", user_id=f"u{i}", discount_pct="7.25",
        cap_pct="12.0", currency="EUR", code="SGR-AAAA-BBBB-CCCC", model="rules",
        expires_at="2026-12-03T10:00:00.000000+00:00", created_at="2026-12-01T10:00:00.000000+00:00",
    )  # fmt: skip
    entry.update(change)
    return entry


def reply(i: int) -> dict[str, str]:
    return {
        "type": "reply", "reply_id": f"reply-m{i}", "event_id": f"m{i}", "session_id": "s1",
        "user_id": "u1", "turn": str(i), "route": "respond", "reason": "replied",
        "message": "Your parcel is on its way.", "discount_pct": "", "cap_pct": "", "offer_id": "",
        "code": "", "engine": "policy", "model": "rules",
        "created_at": "2026-12-01T10:00:00.000000+00:00",
    }  # fmt: skip


def outcome(i: int) -> dict[str, str]:
    return {
        "type": "outcome", "outcome_id": f"out-{i}", "event_id": f"e{i}", "event_type": "item_added",
        "session_id": "s1", "user_id": "u1", "outcome": "no_offer", "reason": "not_a_trigger",
        "offer_id": "", "error_kind": "", "error": "", "at": "2026-12-01T10:00:00.000000+00:00",
    }  # fmt: skip


def void(i: int) -> dict[str, str]:
    return {
        "type": "void", "offer_id": f"o{i}", "user_id": f"u{i}", "reason": "order_completed",
        "at": "2026-12-01T11:00:00.000000+00:00",
    }  # fmt: skip


def add(client: redis.Redis, stream: str, entries: list[dict[str, str]]) -> None:
    with client.pipeline(transaction=False) as pipe:
        for entry in entries:
            pipe.xadd(stream, entry)  # type: ignore[arg-type]
        pipe.execute()


def ledger(client: redis.Redis) -> list[dict[str, Any]]:
    return [json.loads(x) for x in client.lrange(KEYS.ledger, 0, -1)]  # type: ignore[union-attr]


def ids(client: redis.Redis) -> list[str]:
    once = {"offer": "offer_id", "reply": "reply_id", "void": "offer_id", "outcome": "outcome_id"}
    return [f"{e['type']}:{e[once[e['type']]]}" for e in ledger(client)]


def pending(client: redis.Redis) -> int:
    return sum(client.xpending(s, "shop")["pending"] for s in (OFFERS, OUTCOMES))  # type: ignore[index]


def consumer(client: redis.Redis, name: str, **options: Any) -> Consumer:
    options.setdefault("out", io.StringIO())
    options.setdefault("err", io.StringIO())
    found = Consumer(client, "shop", name, base=KEYS.base, **options)
    found.ensure_group()
    return found


class Died(BaseException):
    """The consumer's process ended in the middle of its work."""


def test_a_dead_consumers_entries_are_claimed_and_each_offer_handled_once(
    redis_client: redis.Redis,
) -> None:
    add(redis_client, OFFERS, [offer(i) for i in range(60)])
    seen: list[str] = []

    def die_after_seven(entry: dict[str, Any]) -> None:
        if len(seen) == 7:
            raise Died  # after 7 offers, with the rest of its batch of 20 taken and not acked
        seen.append(entry["offer_id"])

    c1 = consumer(redis_client, "c1", claim_idle_s=0.3, on_entry=die_after_seven)
    with pytest.raises(Died):
        c1.step(block_ms=100, count=20)
    info: Any = redis_client.xpending(OFFERS, "shop")
    assert info["pending"] == 13 and info["consumers"][0]["name"] == b"c1"

    c2 = consumer(redis_client, "c2", claim_idle_s=0.3)
    assert c2.claim() == 0  # not idle long enough yet: c1 might still be working on them
    time.sleep(0.4)
    while c2.step(block_ms=100, count=20):
        pass
    assert sorted(ids(redis_client)) == sorted(f"offer:o{i}" for i in range(60))
    assert pending(redis_client) == 0


def test_every_entry_type_is_read_as_documented(redis_client: redis.Redis) -> None:
    got = parse_entry({k.encode(): v.encode() for k, v in offer(1, supersedes="o0").items()})
    assert got["discount_pct"] == Decimal("7.25") and got["cap_pct"] == Decimal("12.0")
    assert got["supersedes"] == "o0" and got["model"] == "rules" and set(STREAM_FIELDS) <= set(got)
    answer = parse_entry(reply(1))  # empty numbers are None, not Decimal('') (which raises)
    assert answer["discount_pct"] is None and answer["cap_pct"] is None
    assert answer["offer_id"] is None and answer["turn"] == 1
    told = parse_entry(outcome(1))
    assert told["outcome"] == "no_offer" and told["offer_id"] is None
    assert parse_entry(void(1))["offer_id"] == "o1"
    assert parse_entry({"type": "later", "x": "1"}) == {"type": "later", "x": "1"}
    for fields, named in [
        (offer(1, discount_pct="abc"), "discount_pct: not a decimal number (got 'abc')"),
        (offer(1, discount_pct="NaN"), "discount_pct: not a finite number"),
        (offer(1, offer_id=""), "offer_id: missing or empty"),
        ({**reply(1), "turn": "x"}, "turn: not a whole number (got 'x')"),
        ({**outcome(1), "outcome": "maybe"}, "outcome: not one of"),
        ({**outcome(1), "outcome": "offer"}, "offer_id: missing or empty in an 'offer' outcome"),
        (offer(1, expires_at="soon"), "expires_at: not an ISO-8601 time (got 'soon')"),
        ({b"type": b"offer", b"offer_id": b"\xff"}, "offer_id: not UTF-8"),
    ]:
        with pytest.raises(EntryError) as info:
            parse_entry(fields)  # type: ignore[arg-type]
        assert named in str(info.value)


def test_replies_voids_outcomes_and_unknown_types_each_take_effect_once(
    redis_client: redis.Redis,
) -> None:
    add(redis_client, OFFERS, [offer(1), reply(1), reply(2), void(1), {"type": "later", "x": "1"}])
    add(redis_client, OUTCOMES, [outcome(1), outcome(2)])
    c1 = consumer(redis_client, "c1")
    assert c1.run(until_idle=True, block_ms=50) == 6
    # two replies, both with an empty offer_id: each handled, by its own id
    assert ids(redis_client) == [
        "offer:o1", "reply:reply-m1", "reply:reply-m2", "void:o1", "outcome:out-1", "outcome:out-2",
    ]  # fmt: skip
    assert pending(redis_client) == 0  # the unknown type too: ignored and acknowledged
    redis_client.xgroup_setid(OFFERS, "shop", "0")  # everything delivered again
    redis_client.xgroup_setid(OUTCOMES, "shop", "0")
    assert consumer(redis_client, "c2").run(until_idle=True, block_ms=50) == 0
    assert len(ledger(redis_client)) == 6 and pending(redis_client) == 0


def test_a_poison_entry_is_set_aside_after_n_deliveries_without_blocking_the_group(
    redis_client: redis.Redis,
) -> None:
    add(redis_client, OFFERS, [offer(1), offer(2, discount_pct="abc"), offer(3)])
    redis_client.xadd(OFFERS, {b"\xff": b"\xfe", b"type": b"offer"})  # not even UTF-8
    err = io.StringIO()
    c1 = consumer(redis_client, "c1", max_deliveries=3, err=err, claim_idle_s=0.05)
    c1.step(block_ms=50)
    assert ids(redis_client) == ["offer:o1", "offer:o3"]  # the one behind it is not held up
    c1.run(until_idle=True, block_ms=50)
    letter, garbled = [json.loads(x) for x in redis_client.lrange(KEYS.dead, 0, -1)]  # type: ignore[union-attr]
    assert letter["error"] == "discount_pct: not a decimal number (got 'abc')"
    assert letter["fields"]["offer_id"] == "o2" and letter["stream"] == OFFERS
    assert garbled["error"].startswith("<field name>: not UTF-8 text")
    assert "delivery 1 of 3" in err.getvalue() and "delivery 2 of 3" in err.getvalue()
    assert pending(redis_client) == 0 and ids(redis_client) == ["offer:o1", "offer:o3"]


def test_an_entry_that_crashes_its_consumers_is_set_aside_once_delivered_n_times(
    redis_client: redis.Redis,
) -> None:
    add(redis_client, OFFERS, [offer(1)])

    def crash(entry: dict[str, Any]) -> None:
        raise Died  # the process dies on it: no failure is ever recorded, only deliveries

    for _ in range(3):
        with pytest.raises(Died):
            consumer(redis_client, "c1", on_entry=crash).step(block_ms=50)
    consumer(redis_client, "c1", max_deliveries=3).step(block_ms=50)
    [letter] = [json.loads(x) for x in redis_client.lrange(KEYS.dead, 0, -1)]  # type: ignore[union-attr]
    assert letter["error"] == "delivered 3 times without being handled"
    assert pending(redis_client) == 0 and ledger(redis_client) == []


def test_a_consumer_killed_between_its_effect_and_its_ack_does_not_repeat_the_effect(
    redis_client: redis.Redis,
) -> None:
    add(redis_client, OFFERS, [offer(1), offer(2)])
    c1 = consumer(redis_client, "c1")
    ((_stream, entries),) = redis_client.xreadgroup("shop", "c1", {OFFERS: ">"}, count=1)  # type: ignore[misc]
    entry_id, fields = entries[0]
    assert c1.apply(parse_entry(fields), entry_id.decode())  # the effect... and then it died
    assert pending(redis_client) == 1
    restarted = consumer(redis_client, "c1")
    restarted.run(until_idle=True, block_ms=50)  # its own pending entry first: handled already
    assert ids(redis_client) == ["offer:o1", "offer:o2"] and pending(redis_client) == 0


def test_the_example_program_killed_mid_stream_and_restarted_takes_each_effect_once(
    redis_client: redis.Redis, redis_url: str
) -> None:
    n = 2500
    mixed: list[dict[str, str]] = []
    for i in range(n):
        mixed.append([offer(i), reply(i), void(i), {"type": "later"}][i % 4])
    add(redis_client, OFFERS, mixed)
    add(redis_client, OUTCOMES, [outcome(i) for i in range(n)])
    add(redis_client, OFFERS, [offer(n, discount_pct="")])  # poison at the end: no number
    expected = {
        f"{e['type']}:{e['offer_id'] if e['type'] in ('offer', 'void') else e['reply_id']}"
        for e in mixed
        if e["type"] != "later"
    } | {f"outcome:out-{i}" for i in range(n)}
    env = {**os.environ, "SGR_REDIS_URL": redis_url}
    command = [
        sys.executable, "-m", "producers.consumer", "--group", "shop", "--consumer", "c1",
        "--max-deliveries", "2", "--until-idle", "--claim-idle", "0.1",
    ]  # fmt: skip
    first = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while redis_client.llen(KEYS.ledger) < 100 and time.monotonic() < deadline:  # type: ignore[operator]
        assert first.poll() is None, first.stderr.read() if first.stderr else ""
        time.sleep(0.002)
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=30)
    at_kill = len(ledger(redis_client))
    assert 100 <= at_kill < len(expected)  # killed mid-stream
    again = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr[-2000:]
    done = ids(redis_client)
    assert len(done) == len(set(done)) and set(done) == expected  # each effect exactly once
    printed = [json.loads(line) for line in again.stdout.splitlines()]
    assert len(printed) == len(expected) - at_kill  # the restart printed only what it did
    [letter] = [json.loads(x) for x in redis_client.lrange(KEYS.dead, 0, -1)]  # type: ignore[union-attr]
    assert letter["error"] == "discount_pct: missing or empty in an entry of type 'offer'"
    assert pending(redis_client) == 0
