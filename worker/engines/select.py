"""Which engine writes offers: the one place an engine is chosen (``SGR_ENGINE``).

``auto`` asks ``SGR_LLM_URL``'s ``/v1/models`` once, with the configured credentials
(``SGR_LLM_API_KEY``): a model list selects the LLM (``vllm``); no answer, or an answer that is
not a model list, selects the rules engine with a warning naming why. An answer of 401 or 403 is
neither: the LLM is there and refuses the key, which is a configuration error, so the worker
REFUSES TO START with one line naming the status (``SettingsError``: ``sgr worker`` prints it, an
RQ worker logs ``worker_stopping`` and stops) instead of quietly making every offer with the
rules engine.

A new engine is one file in this package and one entry in ``BUILDERS``; an engine on the
OpenAI-compatible wire takes the shared transport (``openai_compat.py``) by subclassing
``VllmEngine`` (``hosted.py`` is the example). LLM figures reach the caller's ``observer``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import structlog

from worker.domain.rules import RuleConfig
from worker.engines.base import CircuitBreaker, Engine
from worker.engines.openai_compat import LlmObserver, NoObserver
from worker.engines.policy import PolicyEngine
from worker.settings import Settings, SettingsError, redact_url

log = structlog.get_logger("sgr.engine")

Builder = Callable[[Settings, RuleConfig, LlmObserver], Engine]
NO_KEY = ("", "EMPTY")


def _policy(settings: Settings, rules: RuleConfig, observer: LlmObserver) -> Engine:
    return PolicyEngine(rules)


def llm_options(settings: Settings, observer: LlmObserver) -> dict[str, Any]:
    """The ``SGR_LLM_*`` settings as an OpenAI-compatible engine's fields."""
    return {
        "base_url": settings.llm_url,
        "model": settings.llm_model,
        "api_key": settings.llm_api_key,
        "timeout_s": settings.llm_timeout_s,
        "retries": settings.llm_retries,
        "backoff_s": settings.llm_backoff_s,
        "retry_after_max_s": settings.llm_retry_after_max_s,
        "max_tokens": settings.llm_max_tokens,
        "temperature": settings.llm_temperature,
        "breaker": CircuitBreaker(settings.breaker_failures, settings.breaker_cooldown_s),
        "observer": observer,
    }


def _vllm(settings: Settings, rules: RuleConfig, observer: LlmObserver) -> Engine:
    from worker.engines.vllm import VllmEngine

    return VllmEngine(**llm_options(settings, observer))


def _openai(settings: Settings, rules: RuleConfig, observer: LlmObserver) -> Engine:
    from worker.engines.hosted import OpenAIEngine

    missing = [
        name
        for name, empty in (
            ("SGR_LLM_MODEL", not settings.llm_model),
            ("SGR_LLM_API_KEY", settings.llm_api_key.get_secret_value() in NO_KEY),
        )
        if empty
    ]
    if missing:
        raise SettingsError(f"SGR_ENGINE=openai needs {' and '.join(missing)}")
    return OpenAIEngine(**llm_options(settings, observer))


BUILDERS: dict[str, Builder] = {
    "policy": _policy,
    "vllm": _vllm,
    "openai": _openai,
}


def build_engine(
    settings: Settings, rules: RuleConfig, observer: LlmObserver | None = None
) -> Engine:
    """The engine ``SGR_ENGINE`` names; for ``auto``, the LLM if its endpoint answers (see the
    module docstring for 401/403). ``observer`` is told of every LLM request and retry."""
    observer = observer if observer is not None else NoObserver()
    name = settings.engine
    url = redact_url(settings.llm_url)
    if name == "auto":
        from worker.engines.openai_compat import BearerKey, OpenAICompat

        llm = OpenAICompat(settings.llm_url, auth=BearerKey(settings.llm_api_key))
        try:
            probe = llm.probe()
        finally:
            llm.close()
        if probe.refused_credentials:
            raise SettingsError(
                f"SGR_ENGINE=auto: {url}/models answered HTTP {probe.status} with the configured "
                "SGR_LLM_API_KEY; set the right key (or SGR_ENGINE=policy): not falling back to "
                "the rules engine silently"
            )
        if not probe.models:
            log.warning("engine_selected", engine="policy", why=probe.why or f"{url} no answer")
            return BUILDERS["policy"](settings, rules, observer)
        name = "vllm"
    engine = BUILDERS[name](settings, rules, observer)
    log.info("engine_selected", engine=name, url=url)
    return engine
