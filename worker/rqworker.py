"""``OfferWorker``: RQ's ``SimpleWorker`` that publishes a job's offers in RQ's own transaction.

After each successful job, RQ finishes it in one MULTI/EXEC round trip (result, registries,
worker statistics). This class adds the job's offer publications to that transaction, so an
offer costs no Redis round trip of its own and reaches the stream at the moment RQ records the
job as finished. Everything else is ``SimpleWorker``'s: jobs, retries, signals, scheduling.

Run it as ``rq worker -w worker.rqworker.OfferWorker cart-events`` or ``sgr worker``. Under any
other worker class the job publishes its offer itself, one round trip more (measured by
``sgr bench``; see the README's worker-class section).

What if something fails: the offer is committed in the hot store before it is handed over
(the outbox). If RQ's transaction fails, the offers stay held and go with the next job's
transaction; if the process dies first, the outbox flush at the next worker start (or the
reaper's) publishes them. Publication is once per offer id whichever path gets there first.
"""

from __future__ import annotations

from typing import Any

import structlog
from rq import SimpleWorker

log = structlog.get_logger("sgr.rqworker")


class OfferWorker(SimpleWorker):
    def work(self, *args: Any, **kwargs: Any) -> bool:
        from worker.jobs import current_runtime
        from worker.pipeline import publish_committed

        runtime = current_runtime()  # opens the stores before the first job, as `sgr worker`
        handoff = runtime.deps.handoff
        handoff.enabled = True
        try:
            return super().work(*args, **kwargs)
        finally:
            handoff.enabled = False
            for offer in handoff.confirm():  # held by a failed finish, with no job after it
                try:
                    publish_committed(runtime.deps, offer)
                except Exception as exc:  # the outbox flush at the next start publishes it
                    log.warning(
                        "handoff_publish_failed", offer_id=offer["offer_id"], error=str(exc)
                    )

    def increment_successful_job_count(self, pipeline: Any = None) -> None:
        """Called by ``handle_job_success`` inside its transaction, on the success path only."""
        super().increment_successful_job_count(pipeline)
        if pipeline is None:
            return
        from worker.jobs import current_runtime

        deps = current_runtime().deps
        if deps.handoff:
            deps.handoff.stage(pipeline, deps.publisher)

    def handle_job_success(
        self, job: Any, queue: Any, started_job_registry: Any, execution: Any
    ) -> None:
        super().handle_job_success(job, queue, started_job_registry, execution)
        from worker.jobs import current_runtime

        deps = current_runtime().deps
        if not deps.handoff:
            return
        now = deps.clock()
        for offer in deps.handoff.confirm():
            try:
                deps.hot.mark_published(offer["offer_id"], now)
            except Exception as exc:  # unmarked: the next outbox flush re-publishes it (no-op)
                log.warning("mark_published_failed", offer_id=offer["offer_id"], error=str(exc))
