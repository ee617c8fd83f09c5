"""Committed offers handed from the job to the worker that runs it, to be published in the
worker's own job-finishing Redis transaction instead of a round trip of their own.

Only a worker that stages them (``worker.rqworker.OfferWorker``) enables a handoff; anywhere else
(a stock ``rq worker``, the demo, a test, the reaper) offers are published at once. The hot store
keeps every committed offer as the outbox either way: an offer held here when the process dies
is published by the next outbox flush (worker start, reaper).

Single-threaded by design: the job and the worker's finishing code run in the same thread.
"""

from __future__ import annotations

from typing import Any

from worker.publish import Publisher


class Handoff:
    def __init__(self) -> None:
        self.enabled = False
        self._held: list[dict[str, Any]] = []  # committed, not yet known to be on the stream

    def __len__(self) -> int:
        return len(self._held)

    def add(self, offer: dict[str, Any]) -> None:
        self._held.append(offer)

    def stage(self, pipeline: Any, publisher: Publisher) -> int:
        """Queue every held offer on ``pipeline``. Called again for the same offers when the
        transaction is retried (WATCH), so nothing staged is forgotten; running the script twice
        adds one entry (its marker is set once). Returns how many were staged."""
        for offer in self._held:
            publisher.stage(pipeline, offer)
        return len(self._held)

    def confirm(self) -> list[dict[str, Any]]:
        """The pipeline they were staged on has been executed: they are on the stream."""
        done, self._held = self._held, []
        return done
