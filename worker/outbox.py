"""The outbox: the one owner of publication. An offer is committed to the hot store first, then
put on the result stream, then marked published; whatever is committed and not yet marked is
published again later (by the worker at start, the reaper, or a replayed event), and the stream
keeps one entry per offer id however often that happens. Every event's recorded outcome goes the
same way to the outcome stream: committed with the event, published, marked published
(``processed_events.published_at``), published again by whoever finds it unmarked, one entry per
``outcome_id``."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

import structlog

from stores.base import HotStore
from worker.domain.conversation import Turn
from worker.domain.model import Offer, OutcomeNotice, VoidNotice
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

    def publish_many(self, offers: Sequence[Offer], outcomes: Sequence[OutcomeNotice] = ()) -> None:
        """Put a batch's committed offers (and the outcomes of its events) on their streams in
        one round trip, then mark them published (one statement each)."""
        if offers or outcomes:
            self.publisher.publish_many(offers, outcomes)
            now = self.clock()
            if offers:
                self.hot.mark_published_many([o.offer_id for o in offers], now)
            if outcomes:
                self.hot.mark_outcomes_published([n.event_id for n in outcomes], now)

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
        turn, then every outcome; returns how many."""
        pending = self.hot.unpublished_offers(limit)
        for offer in pending:
            self.publish(offer)
        turns = self.hot.unpublished_turns(limit)
        for turn in turns:
            self.publish_turn(turn)
        voids = self.hot.void_notices(limit)
        self.publish_voids(voids)
        outcomes = self.hot.unpublished_outcomes(limit)
        self.publish_outcomes(outcomes)
        return len(pending) + len(turns) + len(voids) + len(outcomes)

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

    def publish_outcomes(self, notices: Sequence[OutcomeNotice], stored: bool = True) -> None:
        """Put recorded outcomes on the outcome stream (once per ``outcome_id``), then mark them
        published in one statement. ``stored=False``: an outcome no store holds (a dead letter
        the hot store could not take): published only, the marker keeping it once."""
        if notices:
            self.publisher.publish_outcomes(notices)
            if stored:
                self.hot.mark_outcomes_published([n.event_id for n in notices], self.clock())

    def publish_pending_outcomes(self, event_ids: Sequence[str]) -> int:
        """Publish the outcomes of these events that are recorded and not yet marked published
        (a replayed event's, after a crash between commit and publication); how many."""
        pending = self.hot.unpublished_outcomes_of(list(event_ids)) if event_ids else []
        self.publish_outcomes(pending)
        return len(pending)

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

    def republish_lost_outcomes(self, since: datetime) -> int:
        """Publish again the outcomes published since ``since`` that Redis has lost, as
        ``republish_lost`` does for offers (read back from the hot store: the same entry)."""
        outcomes = {n.outcome_id: n for n in self.hot.recently_published_outcomes(since)}
        gone = self.publisher.missing_outcomes(list(outcomes)) if outcomes else []
        self.publisher.publish_outcomes([outcomes[o] for o in gone])
        if gone:
            log.warning("outcomes_republished", outcomes=len(gone))
        return len(gone)
