"""Chat model at any OpenAI-compatible endpoint, through langchain-openai."""

from __future__ import annotations

import httpx
from langchain_openai import ChatOpenAI

from server.config import Settings, secret
from server.providers.chat_stream import ChatStream


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
    # Our own HTTP client: langchain-openai otherwise shares one per base_url across the
    # process, bound to the first event loop that used it.
    return ChatOpenAI(
        http_async_client=httpx.AsyncClient(
            timeout=settings.llm_timeout_s,
            limits=httpx.Limits(max_connections=256, max_keepalive_connections=64),
        ),
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


def make_chat_stream(settings: Settings) -> ChatStream | None:
    """The persona turn's lean streamed client (same endpoint, key, limits and retries)."""
    if not settings.llm_configured:
        return None
    return ChatStream(
        settings.llm_base_url,
        secret(settings.llm_api_key) or "not-needed",
        settings.llm_model,
        temperature=settings.llm_temperature,
        max_tokens=settings.llm_max_tokens,
        timeout_s=settings.llm_timeout_s,
        max_retries=settings.llm_max_retries,
    )


async def close_chat_model(model: ChatOpenAI | None) -> None:
    client = getattr(model, "http_async_client", None) if model is not None else None
    if isinstance(client, httpx.AsyncClient):
        await client.aclose()
