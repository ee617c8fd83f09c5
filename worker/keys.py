"""Every Redis key the project uses, in one place, named from the settings.

RQ's own keys (``rq:queue:<queue>``, its registries) are RQ's; the queue's name is ours.
"""

from __future__ import annotations

from dataclasses import dataclass

from worker.settings import Settings


@dataclass(frozen=True)
class Keys:
    queue: str  # the RQ queue's name; RQ keeps it in the list rq:queue:<queue>
    offers_stream: str  # the result stream the shop consumes
    offers_channel: str  # Pub/Sub announcements of new offers
    dead_letters: str  # a list of dead letters (JSON)
    prefix: str  # namespace of the keys below

    @classmethod
    def from_settings(cls, settings: Settings) -> Keys:
        return cls(
            queue=settings.queue,
            offers_stream=settings.offers_stream,
            offers_channel=settings.offers_channel,
            dead_letters=settings.dead_letter_key,
            prefix=settings.key_prefix,
        )

    @property
    def rq_queue_list(self) -> str:
        """The list RQ keeps queued job ids in (what KEDA's redis trigger watches)."""
        return f"rq:queue:{self.queue}"

    def published_mark(self, offer_id: str) -> str:
        """Set (with a TTL) when an offer is on the stream: publication happens once per offer."""
        return f"{self.offers_stream}:published:{offer_id}"

    @property
    def outcomes_stream(self) -> str:
        """The stream of every event's outcome (``type`` "outcome", one entry per recorded
        outcome; offers and replies stay on ``offers_stream``)."""
        return f"{self.prefix}:outcomes"

    def outcome_mark(self, outcome_id: str) -> str:
        """Set (with a TTL) when an outcome is on its stream: publication happens once."""
        return f"{self.outcomes_stream}:published:{outcome_id}"

    def consumer(self, group: str) -> str:
        """The namespace of the example consumer's own keys (``producers/consumer.py``: its
        handled markers, records, ledger and dead list), per consumer group."""
        return f"{self.prefix}:consumer:{group}"

    @property
    def reaper_lock(self) -> str:
        return f"{self.prefix}:reaper:lock"

    @property
    def reaper_stats(self) -> str:
        return f"{self.prefix}:reaper:stats"

    @property
    def store_failures(self) -> str:
        """A counter of outcomes that reached only the dead-letter list (the hot store failed)."""
        return f"{self.prefix}:store-failures"

    @property
    def llm_metrics(self) -> str:
        """A hash of fleet-wide LLM figures (requests, latency buckets, tokens, retries) that
        every worker process adds to (worker/metrics.py)."""
        return f"{self.prefix}:metrics:llm"

    @property
    def breaker_states(self) -> str:
        """A hash ``host:pid`` -> ``<1 if the LLM breaker is open> <unix time>``."""
        return f"{self.prefix}:metrics:breakers"

    @property
    def events_in(self) -> str:
        """The list ``sgr bridge`` reads events from (JSON, one per element)."""
        return f"{self.prefix}:events:in"

    @property
    def events_rejected(self) -> str:
        """Where ``sgr bridge`` puts the events it could not enqueue, with the error."""
        return f"{self.prefix}:events:rejected"

    @property
    def queue_alerts(self) -> str:
        """A hash of alert counters the queue side adds to: ``refused_jobs`` (jobs naming a
        function that is not one of the project's job functions), ``poison_items`` (undecodable
        or unparsable items moved aside), by source (``poison_items:<list>``); ``store_waits`` (jobs
        that waited for the hot store) and ``store_requeues`` (jobs requeued without it)."""
        return f"{self.prefix}:metrics:queue-alerts"

    @property
    def due_decisions(self) -> str:
        """A sorted set of abandonment decisions waiting for their time: event id -> due time
        (Unix seconds); rebuilt from the hot store (worker/schedule.py, docs/recovery.md)."""
        return f"{self.prefix}:due-decisions"

    @property
    def due_rebuilt(self) -> str:
        """The Redis ``run_id`` the due set was last rebuilt from the hot store for."""
        return f"{self.prefix}:due-decisions:rebuilt"

    @property
    def due_rebuild_requested(self) -> str:
        """Set (briefly) by the worker that asked for a rebuild of the due set, so one does."""
        return f"{self.prefix}:due-decisions:rebuild-requested"

    @property
    def api_keys(self) -> str:
        """A hash API key id -> its record (JSON: scope, name, sha256 of the key, times); the
        keys themselves are never stored (worker/api/apikeys.py)."""
        return f"{self.prefix}:api:keys"

    def api_rate(self, key_id: str, window: int) -> str:
        """One API key's request counter in one rate-limit window (expires with it)."""
        return f"{self.prefix}:api:rate:{key_id}:{window}"
