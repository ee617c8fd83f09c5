"""`sgr api-key create|list|revoke` on a real Redis: the key printed once as the last line, only
its SHA-256 stored, compared in constant time, refused once revoked."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime

import pytest
import redis
from typer.testing import CliRunner

from worker.api.apikeys import KeyRing, key_id
from worker.cli import app
from worker.keys import Keys
from worker.settings import Settings


@pytest.fixture
def ring(redis_client: redis.Redis, redis_url: str, monkeypatch: pytest.MonkeyPatch) -> KeyRing:
    monkeypatch.setenv("SGR_REDIS_URL", redis_url)
    return KeyRing(redis_client, Keys.from_settings(Settings()))


def test_a_key_is_shown_once_stored_hashed_and_revoked(
    ring: KeyRing, redis_client: redis.Redis
) -> None:
    runner = CliRunner()
    made = runner.invoke(app, ["api-key", "create", "--scope", "checkout", "--name", "till 3"])
    assert made.exit_code == 0, made.output
    key = made.output.strip().splitlines()[-1]
    record = ring.check(key)
    assert record is not None and record.scope == "checkout" and record.name == "till 3"
    stored = redis_client.hget(ring.hash, record.key_id)
    assert stored is not None and key.encode() not in stored
    assert json.loads(stored)["digest"] == hashlib.sha256(key.encode()).hexdigest()
    assert ring.check(key[:-1] + ("A" if key[-1] != "A" else "B")) is None  # one character off
    assert ring.check("sgrk_" + record.key_id + "_" + "x" * 43) is None  # the id is not the key

    listed = runner.invoke(app, ["api-key", "list", "--json"])
    assert listed.exit_code == 0 and key not in listed.output
    assert json.loads(listed.output.splitlines()[0])["key_id"] == record.key_id

    assert runner.invoke(app, ["api-key", "revoke", record.key_id]).exit_code == 0
    assert ring.check(key) is None
    again = runner.invoke(app, ["api-key", "revoke", record.key_id])
    assert again.exit_code == 1 and "no live API key" in again.output


def test_a_key_not_in_form_is_refused_before_redis_is_asked(ring: KeyRing) -> None:
    for presented in ("", "Bearer x", "sgrk_short_x", "sgrk_" + "g" * 12 + "_" + "x" * 43):
        assert key_id(presented) is None
        assert ring.check(presented) is None
    key, record = ring.create("admin", "", datetime.now(UTC))
    assert key_id(key) == record.key_id and record.allows("producer")
    assert not ring.create("producer", "", datetime.now(UTC))[1].allows("checkout")
