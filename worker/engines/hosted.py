"""A hosted OpenAI-compatible API (``SGR_ENGINE=openai``: api.openai.com or any provider that
speaks ``/v1/chat/completions`` with ``response_format`` json_schema): the vLLM engine's bodies
and the shared transport (``openai_compat.py``), with its own name in the audit and OpenAI's name
for the token limit. ``SGR_LLM_URL``, ``SGR_LLM_MODEL`` (required: a hosted list is long) and
``SGR_LLM_API_KEY`` (required) configure it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from worker.engines.vllm import VllmEngine


@dataclass
class OpenAIEngine(VllmEngine):
    """The hosted engine: offers say ``engine=openai``."""

    name: str = "openai"
    token_limit_field: ClassVar[str] = "max_completion_tokens"
