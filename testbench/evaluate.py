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
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from producers.synthetic import StreamConfig, customers, event_stream
from stores.cold import write_history
from stores.sync import sync_snapshot
from worker.domain import rules
from worker.domain.claims import claim_problems, reasoning_contradictions
from worker.domain.conversation import ROUTES, LiveOffer
from worker.domain.events import CartEvent, EventType, parse_event
from worker.domain.model import EventContext
from worker.domain.routing import route_by_words
from worker.engines.base import EngineError, EngineReply, OfferRequest
from worker.engines.negotiation_schemas import PriceReply, RouteReply, TurnRequest
from worker.engines.schemas import OfferAnswer
from worker.handlers import cart as pipeline
from worker.runtime import build_runtime, size_llm_timeout
from worker.settings import Settings

# The message checks the report counts, by the prefix of the problem the rules name.
CHECKS = {
    "catalogue": ("message_not_in_catalogue",),
    "claims": ("message_claims_",),
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
    claims: tuple[str, ...] = ()  # what the sent sentence claims beyond the system's facts
    contradictions: tuple[str, ...] = ()  # what the model's reasoning says against the facts


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
        sized = size_llm_timeout(runtime)  # as a worker does at start (SGR_LLM_WARMUP)
        recorder = Recorder(runtime.deps.engine)
        model = recorder.engine.discover_model()
        deps = replace(runtime.deps, engine=recorder)
        work = eligible_carts(settings, carts, seed, known)

        def one(item: tuple[CartEvent, rules.Facts, rules.Decision]) -> Answer:
            event, facts, decision = item
            request = pipeline.offer_request(
                event, facts, decision, deps.rules, deps.catalogue, deps.message_mode
            )
            started = time.perf_counter()
            reply, problems = pipeline.ask(deps, request)
            latency = time.perf_counter() - started
            own: EngineReply | None = recorder.local.reply
            error: EngineError | None = recorder.local.error
            checked = (
                pipeline.check(deps, event, facts, decision, reply, problems) if reply else None
            )
            offer = checked.offer if checked else None
            sentence = offer.message.split("\n")[0] if offer and "\n" in offer.message else ""
            hist = facts.history
            contradictions = (
                reasoning_contradictions(
                    reasoning_texts(own.answer),
                    decision.segment,
                    facts.inventory,
                    hist.orders_count if hist else 0,
                )
                if own
                else []
            )
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
                claims=tuple(claim_problems(sentence, pipeline.claim_facts(request))),
                contradictions=tuple(contradictions),
            )

        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=concurrency) as pool:
            answers = list(pool.map(one, work))
        wall = time.perf_counter() - started
        runtime.deps.hot.close()
    result = report(answers, model, concurrency, wall)
    result["message_mode"] = runtime.deps.message_mode
    result["warmup_s"] = sized["warmup_s"] if sized else None
    result["llm_timeout_s"] = sized["timeout_s"] if sized else settings.llm_timeout_s
    return result


def reasoning_texts(answer: OfferAnswer) -> list[str]:
    """The answer's reasoning as the model wrote it (the texts the contradictions are read in)."""
    pricing = answer.pricing
    return [
        answer.routing.summary,
        pricing.churn_analysis,
        pricing.financial_analysis,
        pricing.margin_math,
    ]


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
        "bad_claims": sum(bool(a.claims) for a in answers),  # sent sentences claiming too much
        "claims": dict(Counter(p.split(":")[0] for a in answers for p in a.claims)),
        "reasoning_contradictions": sum(bool(a.contradictions) for a in answers),
        "contradictions": dict(Counter(c for a in answers for c in a.contradictions)),
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


# --- sgr eval --negotiation: the router on a labelled corpus ----------------------------------------
CORPUS = Path(__file__).with_name("negotiation_corpus.jsonl")


def load_corpus(path: Path = CORPUS) -> list[dict[str, Any]]:
    """The labelled customer messages (one JSON object a line: text, lang, label, offer, kind)."""
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    for n, row in enumerate(rows):
        if row.get("label") not in ROUTES or not isinstance(row.get("text"), str):
            raise ValueError(f"{path}: line {n + 1}: needs text and a label in {ROUTES}")
    return rows


class RouteRecorder:
    """The engine as ``message.route`` sees it, keeping each thread's own answer (the model's
    route before the words back it)."""

    def __init__(self, engine: Any) -> None:
        self.engine, self.name, self.model = engine, engine.name, engine.model
        self.local = threading.local()

    def route(self, request: TurnRequest) -> RouteReply:
        self.local.reply = None
        self.local.reply = self.engine.route(request)
        return self.local.reply  # type: ignore[no-any-return]

    def propose(self, request: OfferRequest) -> EngineReply:
        return self.engine.propose(request)  # type: ignore[no-any-return]

    def price(self, request: TurnRequest) -> PriceReply:
        return self.engine.price(request)  # type: ignore[no-any-return]


def turn_request_for(n: int, row: dict[str, Any], now: datetime) -> TurnRequest:
    """A turn of a new-customer's cart (100 EUR), with an offer on the table when the row says."""
    live = (
        LiveOffer(
            offer_id=f"eval-offer-{n}",
            session_id=f"eval-{n}",
            code="SGR-EVAL-EVAL-EVAL",
            discount_pct=2.0,
            cap_pct=5.0,
            expires_at=now + timedelta(hours=24),
            redeemed_at=None,
            created_at=now,
        )
        if row.get("offer", True)
        else None
    )
    return TurnRequest(
        event_id=f"eval-turn-{n}",
        message=row["text"],
        turns=(),
        cart_value=100.0,
        currency="EUR",
        margin=0.4,
        inventory="in_stock",
        history=None,
        live_offer=live,
    )


def run_negotiation_eval(
    settings: Settings, concurrency: int = 8, corpus: Path = CORPUS
) -> dict[str, Any]:
    """Every corpus message through ``message.route`` (the model backed by the words, as the
    workers route) and one JSON report: the route taken against the label, the model's own and
    the words' own accuracy, mistakes by label, and any message routed ``accept`` wrongly."""
    from worker.handlers import message

    rows = load_corpus(corpus)
    with tempfile.TemporaryDirectory(prefix="sgr-eval-") as tmp:
        settings = settings.model_copy(update={"data_dir": Path(tmp)})
        import fakeredis

        runtime = build_runtime(
            settings, fakeredis.FakeRedis(), history=NoHistory(), create_store=True
        )
        recorder = RouteRecorder(runtime.deps.engine)
        deps = replace(runtime.deps, engine=recorder)
        if runtime.deps.engine is runtime.deps.fallback or runtime.deps.engine.name == "policy":
            deps = replace(deps, engine=deps.fallback)
        model = getattr(runtime.deps.engine, "discover_model", lambda: "rules")()
        now = datetime.now(UTC)

        def one(item: tuple[int, dict[str, Any]]) -> dict[str, Any]:
            n, row = item
            request = turn_request_for(n, row, now)
            routed, problems = message.route(deps, request)
            own: RouteReply | None = getattr(recorder.local, "reply", None)
            words = route_by_words(row["text"], request.live_offer is not None)
            return {
                **row,
                "route": routed.answer.route,
                "model_route": own.answer.route if own else None,
                "words_route": words.route or "respond",
                "problems": problems,
            }

        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=concurrency) as pool:
            results = list(pool.map(one, enumerate(rows)))
        wall = time.perf_counter() - started
        runtime.deps.hot.close()
    return negotiation_report(results, model, runtime.deps.engine.name, wall)


def negotiation_report(
    results: list[dict[str, Any]], model: str, engine: str, wall_s: float
) -> dict[str, Any]:
    n = len(results)

    def rate(key: str) -> float | None:
        scored = [r for r in results if r[key] is not None]
        return round(sum(r[key] == r["label"] for r in scored) / len(scored), 3) if scored else None

    by_label = {
        label: round(sum(r["route"] == label for r in rs) / len(rs), 3)
        for label in ROUTES
        if (rs := [r for r in results if r["label"] == label])
    }
    by_lang = {
        lang: round(sum(r["route"] == r["label"] for r in rs) / len(rs), 3)
        for lang in sorted({r["lang"] for r in results})
        if (rs := [r for r in results if r["lang"] == lang])
    }
    wrong = [r for r in results if r["route"] != r["label"]]
    return {
        "model": model,
        "engine": engine,
        "messages": n,
        "route_accuracy": rate("route"),
        "model_route_accuracy": rate("model_route"),
        "words_route_accuracy": rate("words_route"),
        "accuracy_by_label": by_label,
        "accuracy_by_language": by_lang,
        "wrong_accepts": sum(r["route"] == "accept" and r["label"] != "accept" for r in results),
        "model_errors": sum(
            any(p.startswith("route_engine_") for p in r["problems"]) for r in results
        ),
        "mistakes": [
            {"text": r["text"][:60], "label": r["label"], "route": r["route"]} for r in wrong[:10]
        ],
        "wall_s": round(wall_s, 1),
    }


class NoHistory:
    """No customer history (every corpus message comes from a new customer)."""

    def history(self, user_id: str) -> None:
        return None

    def close(self) -> None:
        return None
