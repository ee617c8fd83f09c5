"""API keys: made once, shown once, stored hashed in Redis, compared in constant time.

A key is ``sgrk_<id>_<secret>``: ``id`` (12 hex digits) names its record in the hash
``Keys.api_keys``; ``secret`` is 32 random bytes (``secrets.token_urlsafe``). The record keeps the
key's scope, name, times and the SHA-256 of the whole key, never the key. Why SHA-256 and not
argon2 or bcrypt: those slow a guess at a low-entropy password; a 256-bit random secret cannot be
guessed however fast the hash, and a slow hash would cost every request its milliseconds.
Checking a presented key reads its record by id and compares the digests with
``hmac.compare_digest``; a key that does not parse is refused before Redis is asked.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import redis

from worker.keys import Keys

SCOPES = ("producer", "checkout", "admin")
PARSED_MAX = 1024  # parsed key records kept by a process (a shop has a handful of keys)
PREFIX = "sgrk"
_KEY = re.compile(r"^sgrk_(?P<id>[0-9a-f]{12})_(?P<secret>[A-Za-z0-9_-]{43})$")


@dataclass(frozen=True)
class ApiKey:
    """A key's record (what Redis keeps of it)."""

    key_id: str
    scope: str
    name: str
    digest: str
    created_at: str
    revoked_at: str | None = None

    def allows(self, scope: str) -> bool:
        """admin may call every route; producer and checkout their own."""
        return self.revoked_at is None and self.scope in (scope, "admin")

    def public(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k != "digest"}


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class KeyRing:
    """The API keys of one Redis namespace."""

    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self.client, self.hash = client, keys.api_keys
        self._parsed: dict[Any, ApiKey] = {}

    def create(self, scope: str, name: str, now: datetime) -> tuple[str, ApiKey]:
        """A new key (returned once, never stored) and its record."""
        if scope not in SCOPES:
            raise ValueError(f"scope must be one of {', '.join(SCOPES)} (got {scope!r})")
        key_id = secrets.token_hex(6)
        key = f"{PREFIX}_{key_id}_{secrets.token_urlsafe(32)}"
        record = ApiKey(key_id, scope, name, digest(key), now.isoformat())
        if not self.client.hsetnx(self.hash, key_id, json.dumps(asdict(record))):
            return self.create(scope, name, now)  # an id drawn twice: draw again
        return key, record

    def get(self, key_id: str) -> ApiKey | None:
        raw: Any = self.client.hget(self.hash, key_id)
        return ApiKey(**json.loads(raw)) if raw else None

    def all(self) -> list[ApiKey]:
        raw: Any = self.client.hgetall(self.hash)
        return sorted((ApiKey(**json.loads(v)) for v in raw.values()), key=lambda k: k.created_at)

    def revoke(self, key_id: str, now: datetime) -> bool:
        """Revoke a key for good (its record stays, for the audit); False if unknown or revoked."""
        record = self.get(key_id)
        if record is None or record.revoked_at is not None:
            return False
        revoked = ApiKey(**(asdict(record) | {"revoked_at": now.isoformat()}))
        self.client.hset(self.hash, key_id, json.dumps(asdict(revoked)))
        return True

    def check(self, presented: str) -> ApiKey | None:
        """The record of a presented key if it is one of ours and not revoked, else None."""
        match = _KEY.match(presented)
        return _verified(presented, self.get(match["id"])) if match else None

    def verify(self, presented: str, raw: Any) -> ApiKey | None:
        """``check`` on a record read elsewhere (``raw``: the hash's value for the key's id, in
        the API's one Redis round trip with its rate count). The record is parsed once per
        content (``_parsed``, keyed by the record's own bytes: a revocation is new bytes, so
        nothing stale is ever answered), not at every request."""
        if not raw:
            return None
        record = self._parsed.get(raw)
        if record is None:
            if len(self._parsed) >= PARSED_MAX:
                self._parsed.clear()
            record = self._parsed[raw] = ApiKey(**json.loads(raw))
        return _verified(presented, record)


def key_id(presented: str) -> str | None:
    """The id of a presented key, or None if it is not a key of ours in form (then Redis is not
    asked)."""
    match = _KEY.match(presented)
    return match["id"] if match else None


def _verified(presented: str, record: ApiKey | None) -> ApiKey | None:
    if record is None or not hmac.compare_digest(record.digest, digest(presented)):
        return None
    return record if record.revoked_at is None else None
