"""Chat model at any OpenAI-compatible endpoint, through langchain-openai."""

from __future__ import annotations

from langchain_openai import ChatOpenAI

from server.config import Settings, secret


class LLMNotConfigured(RuntimeError):
    """Raised when a turn needs the LLM and no endpoint is configured."""

    def __init__(self) -> None:
        super().__init__(
            "No language model is configured. Set LLM_BASE_URL (an OpenAI-compatible endpoint, "
            "e.g. http://localhost:11434/v1 for Ollama), LLM_API_KEY and LLM_MODEL in .env, "
            "then restart the server."
        )


def make_chat_model(settings: Settings) -> ChatOpenAI | None:
    """One shared client per process; per-turn temperature/max_tokens are bound per call.

    The openai SDK retries connection errors, 429 and 5xx with exponential backoff
    (``max_retries`` retries after the first try)."""
    if not settings.llm_configured:
        return None
    return ChatOpenAI(
        model=settings.llm_model,
        base_url=settings.llm_base_url,
        api_key=secret(settings.llm_api_key) or "not-needed",
        temperature=settings.llm_temperature,
        max_completion_tokens=settings.llm_max_tokens,
        timeout=settings.llm_timeout_s,
        max_retries=settings.llm_max_retries,
        streaming=True,
        stream_usage=True,
    )
