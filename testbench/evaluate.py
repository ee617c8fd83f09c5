"""``sgr eval``: N eligible abandoned carts through the pipeline's own stages against a real
OpenAI-compatible server (vLLM), concurrently, and one JSON report of what the model wrote.

Each cart goes through the stages the workers run (``rules.facts_for``, the gate, the history
lookup in a real snapshot, the cap, ``pipeline.offer_request``, ``pipeline.ask`` and
``pipeline.check``); nothing is committed or published. The report counts schema-valid answers,
answers used as they came (no retry, no guardrail problem, no fallback), offers above the cap
(must be 0), each failed message check, latency and tokens per answer, and sample messages.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from producers.synthetic import StreamConfig, customers, event_stream
from stores.cold import write_history
from stores.sync import sync_snapshot
from worker.domain import rules
from worker.domain.events import CartEvent, EventType, parse_event
from worker.domain.model import EventContext
from worker.engines.base import EngineError, EngineReply, OfferRequest
from worker.handlers import cart as pipeline
from worker.runtime import build_runtime
from worker.settings import Settings

# The message checks the report counts, by the prefix of the problem the rules name.
CHECKS = {
    "language": ("message_not_english",),
    "length": ("message_too_short",),
    "repetition": ("message_repetition",),
    "number": ("message_has_number", "message_has_number_word", "message_has_percent"),
    "code_or_discount": ("message_mentions_code_or_discount", "message_has_code_like_token"),
    "sign_or_control": ("message_has_control_character",),
}


@dataclass
class Answer:
    """One cart's result."""

    cap_pct: float
    schema_valid: bool
    as_is: bool
    engine: str | None
    discount_pct: float | None
    message: str | None  # what the model wrote (None when it gave no valid answer)
    problems: tuple[str, ...]
    latency_s: float
    tokens: int | None
    attempts: int


class Recorder:
    """The LLM engine as the runner sees it, keeping each thread's last reply or error and the
    completion tokens the server reported for it (the transport's observer)."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self.name = engine.name
        self.model: str | None = engine.model
        self.route, self.price = engine.route, engine.price  # negotiation: not recorded
        self.local = threading.local()
        engine.llm.observer = self  # the transport tells it each request's reported tokens

    def request(self, seconds: float, prompt_tokens: int, completion_tokens: int) -> None:
        self.local.tokens = getattr(self.local, "tokens", 0) + completion_tokens

    def retry(self, kind: str, delay_s: float) -> None:
        return None

    def watch_breaker(self, breaker: Any) -> None:
        return None

    def propose(self, request: OfferRequest) -> EngineReply:
        self.local.tokens, self.local.reply, self.local.error = 0, None, None
        try:
            self.local.reply = self.engine.propose(request)
        except EngineError as exc:
            self.local.error = exc
            raise
        return self.local.reply  # type: ignore[no-any-return]


def eligible_carts(
    settings: Settings, count: int, seed: int, known: int
) -> list[tuple[CartEvent, rules.Facts, rules.Decision]]:
    """The first ``count`` abandoned carts of a synthetic stream that the rules allow an offer,
    each with its facts (history from ``settings.history_db``) and its cap."""
    from stores.history import HistorySnapshot

    cfg = settings.rule_config()
    history = HistorySnapshot(settings.history_db)
    now = datetime.now(UTC)
    out: list[tuple[CartEvent, rules.Facts, rules.Decision]] = []
    sessions = max(50, count * 3)
    empty = EventContext(None, None, None)
    while len(out) < count:
        stream = StreamConfig(sessions=sessions, known_customers=known, seed=seed)
        out.clear()
        for raw in event_stream(stream, now=now):
            if raw["type"] != EventType.CART_ABANDONED.value:
                continue
            event = parse_event(raw, now=now)
            facts = rules.facts_for(event, empty, now)
            if rules.gate(facts, cfg) is not None:
                continue
            facts = replace(facts, history=history.history(event.user_id))
            decision = rules.cap_for(facts, cfg)
            if decision.allowed:
                out.append((event, facts, decision))
                if len(out) == count:
                    break
        sessions *= 2
    history.close()
    return out


def run_eval(
    settings: Settings, carts: int = 100, concurrency: int = 8, seed: int = 11
) -> dict[str, Any]:
    """Run ``carts`` eligible carts against ``settings.llm_url`` and report (one JSON object)."""
    with tempfile.TemporaryDirectory(prefix="sgr-eval-") as tmp:
        settings = settings.model_copy(update={"data_dir": Path(tmp), "engine": "vllm"})
        known = 5000
        write_history(settings.cold_db, customers(known))
        sync_snapshot(settings.cold_db, settings.history_db)
        import fakeredis  # nothing is published: the runtime only needs a client to wire

        runtime = build_runtime(settings, fakeredis.FakeRedis(), create_store=True)
        recorder = Recorder(runtime.deps.engine)
        model = recorder.engine.discover_model()
        deps = replace(runtime.deps, engine=recorder)
        work = eligible_carts(settings, carts, seed, known)

        def one(item: tuple[CartEvent, rules.Facts, rules.Decision]) -> Answer:
            event, facts, decision = item
            request = pipeline.offer_request(event, facts, decision, deps.rules)
            started = time.perf_counter()
            reply, problems = pipeline.ask(deps, request)
            latency = time.perf_counter() - started
            own: EngineReply | None = recorder.local.reply
            error: EngineError | None = recorder.local.error
            checked = (
                pipeline.check(deps, event, facts, decision, reply, problems) if reply else None
            )
            offer = checked.offer if checked else None
            return Answer(
                cap_pct=decision.cap_pct,
                schema_valid=own is not None,
                as_is=own is not None
                and own.attempts == 1
                and not problems
                and offer is not None
                and offer.engine == own.engine,
                engine=offer.engine if offer else None,
                discount_pct=offer.discount_pct if offer else None,
                message=own.answer.pricing.customer_message if own else None,
                problems=tuple(problems),
                latency_s=latency,
                tokens=recorder.local.tokens or None,
                attempts=own.attempts if own else (error.attempts if error else 0),
            )

        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=concurrency) as pool:
            answers = list(pool.map(one, work))
        wall = time.perf_counter() - started
        runtime.deps.hot.close()
    return report(answers, model, concurrency, wall)


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return round(values[0], 3)
    return round(statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1], 3)


def report(answers: list[Answer], model: str, concurrency: int, wall_s: float) -> dict[str, Any]:
    n = len(answers)
    checks: Counter[str] = Counter({name: 0 for name in CHECKS})
    for a in answers:
        failed = {
            name for name, prefixes in CHECKS.items() for p in a.problems if p.startswith(prefixes)
        }
        checks.update(failed)
    engines: Counter[str] = Counter(a.problems[0].split(":")[0] for a in answers if a.problems)
    tokens = [float(a.tokens) for a in answers if a.tokens]
    latencies = [a.latency_s for a in answers]
    written = [a.message for a in answers if a.message is not None]
    return {
        "model": model,
        "carts": n,
        "concurrency": concurrency,
        "schema_valid_rate": round(sum(a.schema_valid for a in answers) / n, 3) if n else None,
        "accepted_as_is_rate": round(sum(a.as_is for a in answers) / n, 3) if n else None,
        "fallback_offers": sum(a.engine not in (None, "vllm") for a in answers),
        "no_offer": sum(a.engine is None for a in answers),
        "retried": sum(a.attempts > 1 for a in answers),
        "over_cap": sum(
            a.discount_pct is not None and a.discount_pct > a.cap_pct + 1e-9 for a in answers
        ),
        "message_checks": dict(checks),
        "first_problems": dict(engines.most_common()),
        "latency_p50_s": _pct(latencies, 50),
        "latency_p95_s": _pct(latencies, 95),
        "tokens_per_answer_p50": _pct(tokens, 50),
        "tokens_per_answer_p95": _pct(tokens, 95),
        "tokens_per_s": round(sum(tokens) / wall_s, 1) if wall_s > 0 else None,
        "wall_s": round(wall_s, 1),
        "distinct_messages": len(set(written)),  # a small model echoes its worked examples
        "most_common_message_share": (
            round(Counter(written).most_common(1)[0][1] / len(written), 3) if written else None
        ),
        "sample_messages": _samples(answers),
    }


def _samples(answers: list[Answer], k: int = 3) -> list[str]:
    """Three different messages the model wrote: the most common one, the first one the checks
    refused (if any), then the next most common ones."""
    written = Counter(a.message for a in answers if a.message is not None)
    refused = [a.message for a in answers if a.message is not None and not a.as_is]
    order = [m for m, _ in written.most_common()]
    picked = order[:1] + [m for m in refused[:1] if m not in order[:1]]
    picked += [m for m in order if m not in picked]
    return picked[:k]


def dumps(result: dict[str, Any]) -> str:
    return json.dumps(result, ensure_ascii=False)
