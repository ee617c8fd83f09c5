"""Which engine writes offers: the one place an engine is chosen (``SGR_ENGINE``).

``auto`` takes the LLM endpoint when it answers ``/v1/models`` like an OpenAI-compatible server,
the rules engine otherwise. A new engine is one file in this package and one entry in ``BUILDERS``.
"""

from __future__ import annotations

from collections.abc import Callable

import structlog

from worker.domain.rules import RuleConfig
from worker.engines.base import CircuitBreaker, Engine
from worker.engines.policy import PolicyEngine
from worker.settings import Settings, redact_url

log = structlog.get_logger("sgr.engine")


def _policy(settings: Settings, rules: RuleConfig) -> Engine:
    return PolicyEngine(rules)


def _vllm(settings: Settings, rules: RuleConfig) -> Engine:
    from worker.engines.vllm import VllmEngine

    return VllmEngine(
        base_url=settings.llm_url,
        model=settings.llm_model,
        api_key=settings.llm_api_key.get_secret_value(),
        timeout_s=settings.llm_timeout_s,
        retries=settings.llm_retries,
        backoff_s=settings.llm_backoff_s,
        max_tokens=settings.llm_max_tokens,
        temperature=settings.llm_temperature,
        breaker=CircuitBreaker(settings.breaker_failures, settings.breaker_cooldown_s),
    )


BUILDERS: dict[str, Callable[[Settings, RuleConfig], Engine]] = {
    "policy": _policy,
    "vllm": _vllm,
}


def build_engine(settings: Settings, rules: RuleConfig) -> Engine:
    """The engine ``SGR_ENGINE`` names; for ``auto``, the LLM if its endpoint answers."""
    name = settings.engine
    if name == "auto":
        from worker.engines.vllm import endpoint_answers

        url = redact_url(settings.llm_url)
        if endpoint_answers(settings.llm_url):
            name = "vllm"
        else:
            log.warning("engine_selected", engine="policy", why=f"{url} does not answer")
            return BUILDERS["policy"](settings, rules)
    engine = BUILDERS[name](settings, rules)
    log.info("engine_selected", engine=name, url=redact_url(settings.llm_url))
    return engine
