"""Phase 4 of ``sgr bench``: the pipeline against a real vLLM server, beside the same requests
sent straight to it by a plain HTTP client at the same concurrency."""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from testbench.benchkit import Lane, Phase, batches, bench_events, fleet_rss, make_fleet
from worker.settings import redact_url

if TYPE_CHECKING:
    from testbench.benchkit import BenchConfig

BATCH_FUNC = "worker.jobs.handle_batch"


def endpoint_model(url: str) -> str | None:
    """The first model an OpenAI-compatible endpoint lists, or None if it does not answer."""
    import httpx

    try:
        resp = httpx.get(url.rstrip("/") + "/models", timeout=2.0)
        if resp.status_code != 200:
            return None
        data = resp.json().get("data") or []
        return data[0]["id"] if data else None
    except (httpx.HTTPError, ValueError, KeyError):
        return None


def request_bodies(
    events: Sequence[dict[str, Any]], snapshot: Path, url: str, model: str
) -> list[dict[str, Any]]:
    """The chat requests the pipeline sends for these events (fresh sessions, no prior offers),
    built by the pipeline's own ``offer_request`` from the history snapshot its workers read."""
    from dataclasses import replace

    from stores.history import HistorySnapshot
    from worker.domain import rules
    from worker.domain.events import parse_event
    from worker.domain.model import EventContext
    from worker.engines.vllm import VllmEngine
    from worker.handlers.cart import offer_request
    from worker.settings import Settings

    settings = Settings()
    cfg = settings.rule_config()
    engine = VllmEngine(
        base_url=url,
        model=model,
        max_tokens=settings.llm_max_tokens,
        temperature=settings.llm_temperature,
    )
    history = HistorySnapshot(snapshot)
    bodies = []
    try:
        for payload in events:
            event = parse_event(payload)
            assert event.cart is not None
            fresh = EventContext(outcome=None, session=None, last_offer_at=None)
            facts = rules.facts_for(event, fresh, datetime.now(UTC))
            facts = replace(facts, history=history.history(event.user_id))
            decision = rules.cap_for(facts, cfg)
            bodies.append(engine.request_body(offer_request(event, facts, decision, cfg)))
    finally:
        history.close()
    return bodies


def direct_rate(url: str, bodies: Sequence[dict[str, Any]], concurrency: int) -> tuple[float, int]:
    """The same requests sent straight to the server by a plain HTTP client, ``concurrency`` at a
    time; (requests per second, how many answered 200)."""
    from concurrent.futures import ThreadPoolExecutor

    import httpx

    endpoint = url.rstrip("/") + "/chat/completions"
    with httpx.Client(timeout=httpx.Timeout(300.0, connect=5.0)) as client:

        def send(body: dict[str, Any]) -> int:
            return client.post(endpoint, json=body).status_code

        t0 = time.perf_counter()
        with ThreadPoolExecutor(max_workers=concurrency) as pool:
            codes = list(pool.map(send, bodies))
        elapsed = time.perf_counter() - t0
    return len(bodies) / elapsed, sum(1 for c in codes if c == 200)


def vllm_phase(
    cfg: BenchConfig, url: str, conn: Any, phase: Phase, llm_url: str, model: str
) -> dict[str, Any]:
    """(4): the pipeline against a real server with ``cfg.vllm_inflight`` requests in flight
    (``cfg.vllm_workers`` processes, each a batch job of its share at once, SGR_LLM_CONCURRENCY),
    and the same requests sent directly at the same concurrency, round by round in turn (each
    side first every other time), so that both see the same moments of a shared machine;
    medians. The requests carry the pipeline's per-event sampling seed, so both sides ask for the
    same completions."""
    w, inflight, n = cfg.vllm_workers, cfg.vllm_inflight, cfg.vllm_requests
    per_worker = max(1, inflight // w)
    inflight = per_worker * w
    events = bench_events(n + inflight, customers=cfg.customers, seed=cfg.seed + 4, prefix="v")
    warm, measured = events[:inflight], events[inflight:]
    bodies = request_bodies(measured, phase.dir / "history.sqlite", llm_url, model)
    size = inflight  # one round: one batch job per worker, all of it in flight at once
    lane = Lane(conn, "bench-vllm")
    env = phase.env(
        cfg.log_level,
        SGR_ENGINE="vllm",
        SGR_LLM_URL=llm_url,
        SGR_LLM_MODEL=model,
        SGR_LLM_CONCURRENCY=str(per_worker),
    )
    pipelines: list[float] = []
    directs: list[float] = []
    answered = 0
    with make_fleet(w, url, lane.queue.name, env, cfg.worker_class) as fleet:
        lane.wait_workers(w)
        lane.run(BATCH_FUNC, batches(warm, per_worker), 600)
        since = datetime.now(UTC)
        for i, start in enumerate(range(0, n, size)):
            batch = measured[start : start + size]
            jobs = batches(batch, per_worker)
            # Whoever goes second finds each request's grammar compiled (vLLM caches it per
            # schema, ~50-80 ms here): the two sides take turns going first.
            if i % 2:
                rate, ok = direct_rate(llm_url, bodies[start : start + size], inflight)
            timeout = 120 + 60 * len(batch)
            jobs_per_s = lane.run(BATCH_FUNC, jobs, timeout, poll_s=0.05)
            pipelines.append(jobs_per_s * len(batch) / len(jobs))
            if not i % 2:
                rate, ok = direct_rate(llm_url, bodies[start : start + size], inflight)
            directs.append(rate)
            answered += ok
        stages = phase.stages(since)
        rss = fleet_rss(fleet)
    pipeline, direct = statistics.median(pipelines), statistics.median(directs)
    return {
        "vllm_url": redact_url(llm_url),
        "vllm_model": model,
        "vllm_workers": w,
        "vllm_inflight": inflight,
        "vllm_requests": n,
        "vllm_pipeline_per_s": round(pipeline, 3),
        "vllm_direct_per_s": round(direct, 3),
        "vllm_direct_answered": answered,
        "vllm_vs_direct": round(pipeline / direct, 3),
        "vllm_rounds": {
            "pipeline_per_s": [round(v, 3) for v in pipelines],
            "direct_per_s": [round(v, 3) for v in directs],
        },
        "vllm_run": stages,
        "rss_mb": rss,
    }
