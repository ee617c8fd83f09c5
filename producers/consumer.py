"""A shop's consumer of the offers stream: an example to copy (the README's "Consuming offers").

Several consumers share the work through one consumer group: each entry goes to one of them
(XREADGROUP), which acknowledges it once the offer is handled (XACK). An entry a consumer took and
never acknowledged (it died) stays pending; another consumer claims it after ``--claim-idle`` s
(XAUTOCLAIM) and handles it. An offer is handled at least once: make ``handle`` idempotent by
``offer_id`` (the example records handled ids in a Redis set, the way a shop would in its own
database).

    python -m producers.consumer --group shop --consumer c1 [--stream sgr:offers] [--count N]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import redis

Offer = dict[str, Any]
NUMBER_FIELDS = ("discount_pct", "cap_pct")


def parse_entry(fields: dict[bytes, bytes]) -> Offer:
    """A stream entry as typed values: every field is text; ``discount_pct`` and ``cap_pct`` (only
    there when the worker runs with ``SGR_PUBLISH_CAP=1``) are decimal numbers (``Decimal``, never
    floats, for money), an empty ``model`` is None."""
    offer: Offer = {k.decode(): v.decode() for k, v in fields.items()}
    for name in NUMBER_FIELDS:
        if name in offer:
            offer[name] = Decimal(offer[name])
    if offer.get("model") == "":
        offer["model"] = None
    return offer


class Consumer:
    def __init__(
        self,
        client: redis.Redis,
        group: str,
        name: str,
        *,
        stream: str = "sgr:offers",
        claim_idle_s: float = 30.0,
        handle: Callable[[Offer], None] | None = None,
    ) -> None:
        self.client, self.group, self.name, self.stream = client, group, name, stream
        self.claim_idle_ms = int(claim_idle_s * 1000)
        self.handle = handle or self.print_offer
        self.handled = 0

    def ensure_group(self, start: str = "0") -> None:
        """Create the group (from the stream's start by default) unless it exists."""
        try:
            self.client.xgroup_create(self.stream, self.group, id=start, mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def print_offer(self, offer: Offer) -> None:
        """The example's handler: once per offer (a Redis set of handled ids stands for the
        shop's own database), printed as one JSON line."""
        kind = offer.get("type", "offer")  # a void notice shares its offer's offer_id
        key = offer.get("offer_id") if kind == "offer" else f"{kind}:{offer.get('offer_id') or offer.get('reply_id')}"  # fmt: skip
        if self.client.sadd(f"{self.stream}:{self.group}:handled", str(key)):
            sys.stdout.write(json.dumps(offer, default=str) + "\n")
            sys.stdout.flush()

    def _process(self, entries: list[Any]) -> int:
        done = 0
        for entry_id, fields in entries:
            if fields is None:  # trimmed from the stream meanwhile: nothing to handle
                self.client.xack(self.stream, self.group, entry_id)
                continue
            self.handle(parse_entry(fields))
            self.client.xack(self.stream, self.group, entry_id)
            done += 1
        self.handled += done
        return done

    def claim(self) -> int:
        """Handle the entries other consumers took and left idle for longer than claim_idle_s."""
        done, cursor = 0, "0-0"
        while True:
            reply: Any = self.client.xautoclaim(
                self.stream, self.group, self.name, self.claim_idle_ms, cursor, count=100
            )
            cursor, entries = reply[0], reply[1]
            done += self._process(entries)
            if cursor in (b"0-0", "0-0"):
                return done

    def step(self, block_ms: int = 1000, count: int = 100) -> int:
        """One round: this consumer's own pending entries (after a restart), claims, new ones."""
        done = 0
        own: Any = self.client.xreadgroup(self.group, self.name, {self.stream: "0"}, count=count)
        for _stream, entries in own or []:
            done += self._process(entries)
        done += self.claim()
        new: Any = self.client.xreadgroup(
            self.group, self.name, {self.stream: ">"}, count=count, block=block_ms
        )
        for _stream, entries in new or []:
            done += self._process(entries)
        return done

    def run(self, limit: int = 0) -> int:
        self.ensure_group()
        while limit == 0 or self.handled < limit:
            self.step()
        return self.handled


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m producers.consumer", description=__doc__)
    parser.add_argument("--group", required=True, help="consumer group (one per application)")
    parser.add_argument("--consumer", required=True, help="this consumer's name in the group")
    parser.add_argument("--stream", default=None, help="the offers stream (SGR_OFFERS_STREAM)")
    parser.add_argument("--url", default=None, help="Redis URL (SGR_REDIS_URL)")
    parser.add_argument("--claim-idle", type=float, default=30.0, help="claim after s idle")
    parser.add_argument("--count", type=int, default=0, help="stop after N offers (0: never)")
    args = parser.parse_args(argv)
    from worker.settings import SettingsError, load_settings

    try:
        settings = load_settings()
    except SettingsError as exc:
        sys.stderr.write(f"consumer: error: {exc}\n")
        return 1
    client = redis.Redis.from_url(args.url or settings.redis_url)
    consumer = Consumer(
        client,
        args.group,
        args.consumer,
        stream=args.stream or settings.offers_stream,
        claim_idle_s=args.claim_idle,
    )
    try:
        consumer.run(args.count)
    except KeyboardInterrupt:
        pass
    except redis.ConnectionError as exc:
        sys.stderr.write(f"consumer: error: cannot reach Redis: {exc}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
