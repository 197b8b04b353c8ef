"""Chat model at any OpenAI-compatible endpoint: the turn's lean stream (chat_stream.py),
and langchain-openai's ChatOpenAI for the calls off the turn's path."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import httpx

from server.config import Settings, secret
from server.providers.chat_stream import ChatStream

if TYPE_CHECKING:
    from langchain_openai import ChatOpenAI


class LLMNotConfigured(RuntimeError):
    """Raised when a turn needs the LLM and no endpoint is configured."""

    def __init__(self) -> None:
        super().__init__(
            "No language model is configured. Set LLM_BASE_URL (an OpenAI-compatible endpoint, "
            "e.g. http://localhost:11434/v1 for Ollama), LLM_API_KEY and LLM_MODEL in .env, "
            "then restart the server."
        )


class LazyChatModel:
    """ChatOpenAI, built on its first call: langchain-openai (about 26 MB) is loaded only
    when a call off the turn's path needs it (a screen task's spoken preview), and then in
    a thread, not on the event loop."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.model: ChatOpenAI | None = None

    def _build(self) -> ChatOpenAI:
        """One shared client per process; the openai SDK retries connection errors, 429
        and 5xx with exponential backoff (``max_retries`` retries after the first try)."""
        from langchain_openai import ChatOpenAI

        s = self.settings
        # Our own HTTP client: langchain-openai otherwise shares one per base_url across
        # the process, bound to the first event loop that used it.
        return ChatOpenAI(
            http_async_client=httpx.AsyncClient(
                timeout=s.llm_timeout_s,
                limits=httpx.Limits(
                    max_connections=s.llm_max_connections,
                    max_keepalive_connections=64,
                    keepalive_expiry=s.llm_keepalive_s,
                ),
            ),
            model=s.llm_model,
            base_url=s.llm_base_url,
            api_key=secret(s.llm_api_key) or "not-needed",
            temperature=s.llm_temperature,
            max_completion_tokens=s.llm_max_tokens,
            timeout=s.llm_timeout_s,
            max_retries=s.llm_max_retries,
            streaming=True,
            stream_usage=True,
        )

    async def ainvoke(self, *args: Any, **kwargs: Any) -> Any:
        if self.model is None:
            self.model = await asyncio.to_thread(self._build)
        return await self.model.ainvoke(*args, **kwargs)

    async def aclose(self) -> None:
        client = getattr(self.model, "http_async_client", None)
        if isinstance(client, httpx.AsyncClient):
            await client.aclose()


def make_chat_model(settings: Settings) -> LazyChatModel | None:
    return LazyChatModel(settings) if settings.llm_configured else None


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
        keepalive_s=settings.llm_keepalive_s,
        max_connections=settings.llm_max_connections,
    )


async def close_chat_model(model: LazyChatModel | None) -> None:
    if model is not None:
        await model.aclose()
