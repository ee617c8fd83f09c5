"""The outbox: the one owner of publication. An offer is committed to the hot store first, then
put on the result stream, then marked published; whatever is committed and not yet marked is
published again later (by the worker at start, the reaper, or a replayed event), and the stream
keeps one entry per offer id however often that happens."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

import structlog

from stores.base import HotStore
from worker.domain.conversation import Turn
from worker.domain.model import Offer, VoidNotice
from worker.publish import Publisher
from worker.schedule import DueSet

log = structlog.get_logger("sgr.outbox")


@dataclass(frozen=True)
class Outbox:
    hot: HotStore
    publisher: Publisher
    clock: Callable[[], datetime]

    def publish(self, offer: Offer) -> None:
        """Put a committed offer on the stream (once per offer id), then mark it published."""
        self.publisher.publish(offer)
        self.hot.mark_published(offer.offer_id, self.clock())

    def publish_many(self, offers: Sequence[Offer]) -> None:
        """Put a batch's committed offers on the stream in one round trip, then mark them all
        published in one statement."""
        if offers:
            self.publisher.publish_many(offers)
            self.hot.mark_published_many([o.offer_id for o in offers], self.clock())

    def publish_pending(self, offer_id: str | None) -> bool:
        """Publish a committed offer if it is not yet marked published."""
        if offer_id is None:
            return False
        offer = self.hot.get_offer(offer_id)
        if offer is None or offer.published_at is not None:
            return False
        self.publish(offer)
        return True

    def flush(self, limit: int = 1000) -> int:
        """Publish every committed offer still waiting (after a crash), then every negotiation
        turn; returns how many."""
        pending = self.hot.unpublished_offers(limit)
        for offer in pending:
            self.publish(offer)
        turns = self.hot.unpublished_turns(limit)
        for turn in turns:
            self.publish_turn(turn)
        voids = self.hot.void_notices(limit)
        self.publish_voids(voids)
        return len(pending) + len(turns) + len(voids)

    def publish_voids(self, notices: Sequence[VoidNotice]) -> None:
        """Put committed void notices (an order closed an offer) on the stream, once each, then
        mark them published."""
        for notice in notices:
            self.publisher.publish_entry(notice.entry_id, notice.stream_entry())
            self.hot.mark_void_published(notice.offer_id, self.clock())

    def schedule(self, items: Sequence[tuple[str, datetime]]) -> None:
        """After the commit that scheduled them: decisions into the Redis due set (what is lost
        here the reaper puts back from the hot store)."""
        if items:
            DueSet(self.publisher.client, self.publisher.keys).add(items)

    def publish_turn(self, turn: Turn) -> None:
        """Put a committed negotiation turn on the stream: its offer (a ``type`` "offer" entry)
        when it made one, else its reply (``type`` "reply"); then mark the turn published."""
        if turn.offer_id is not None:
            self.publish_pending(turn.offer_id)
        else:
            self.publisher.publish_entry(turn.reply_id, turn.stream_entry())
        self.hot.mark_turn_published(turn.event_id, self.clock())

    def publish_pending_turn(self, event_id: str) -> bool:
        """Publish a committed turn if it is not yet marked published."""
        turn = self.hot.get_turn(event_id)
        if turn is None or turn.published_at is not None:
            return False
        self.publish_turn(turn)
        return True

    def republish_lost(self, since: datetime) -> int:
        """Publish again the offers published since ``since`` that Redis has lost (a crash between
        AOF fsyncs); returns how many."""
        recent = {o.offer_id: o for o in self.hot.recently_published(since)}
        lost = self.publisher.missing(list(recent)) if recent else []
        for offer_id in lost:
            self.publisher.publish(recent[offer_id])
        if lost:
            log.warning("offers_republished", offers=len(lost))
        return len(lost)
