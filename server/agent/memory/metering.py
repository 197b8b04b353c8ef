"""Usage of mem0's own model calls: memory extraction (an LLM call per saved exchange) and
embeddings (every search and every saved memory). mem0 keeps the OpenAI client's answers to
itself, usage included, so the two SDK methods it calls are wrapped on its client objects:
the answer passes through unchanged and its ``usage`` is counted for the user the memory
call is for (``for_user``, a context variable: mem0 runs the SDK calls in worker threads,
which inherit the caller's context)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Awaitable, Callable, Iterator
from contextvars import ContextVar
from typing import Any

from server.logging import get_logger

log = get_logger(__name__)

CountUsage = Callable[[str, dict[str, int]], Awaitable[None]]
_user: ContextVar[str | None] = ContextVar("memory_usage_user", default=None)


@contextlib.contextmanager
def for_user(user_id: str) -> Iterator[None]:
    """mem0 calls made inside are counted for ``user_id``."""
    token = _user.set(user_id)
    try:
        yield
    finally:
        _user.reset(token)


def llm_counters(response: Any) -> dict[str, int]:
    usage = getattr(response, "usage", None)
    tokens_in = int(getattr(usage, "prompt_tokens", 0) or 0)
    tokens_out = int(getattr(usage, "completion_tokens", 0) or 0)
    return {
        "memory_llm_calls": 1,
        "memory_input_tokens": tokens_in,
        "memory_output_tokens": tokens_out,
    }


def embedding_counters(response: Any) -> dict[str, int]:
    usage = getattr(response, "usage", None)
    return {"embedding_calls": 1, "embedding_tokens": int(getattr(usage, "prompt_tokens", 0) or 0)}


def embedding_usage(usage: dict[str, Any]) -> dict[str, int]:
    """The counters of an embedding call made without the SDK (its JSON ``usage``)."""
    return {"embedding_calls": 1, "embedding_tokens": int(usage.get("prompt_tokens") or 0)}


class MemoryMeter:
    """Counts mem0's calls into the store's usage counters, from whichever thread mem0 made
    them in (the count is written on the event loop, in the background)."""

    def __init__(self, count: CountUsage) -> None:
        self.count = count
        self.loop: asyncio.AbstractEventLoop | None = None

    def attach(self, mem: Any) -> None:
        """Wrap the SDK calls of one mem0 instance (its LLM and its embedder)."""
        self.loop = asyncio.get_running_loop()
        llm_client = getattr(getattr(mem, "llm", None), "client", None)
        if llm_client is not None:
            self._wrap(llm_client.chat.completions, llm_counters)
        embed_client = getattr(getattr(mem, "embedding_model", None), "client", None)
        if embed_client is not None:
            self._wrap(embed_client.embeddings, embedding_counters)

    def _wrap(self, resource: Any, counters: Callable[[Any], dict[str, int]]) -> None:
        create = resource.create

        @functools.wraps(create)
        def counted(*args: Any, **kwargs: Any) -> Any:
            response = create(*args, **kwargs)
            user = _user.get()
            if user is not None:
                self.record(user, counters(response))
            return response

        resource.create = counted

    def record(self, user_id: str, counters: dict[str, int]) -> None:
        """Count in the background (from any thread)."""
        loop = self.loop
        if loop is None or loop.is_closed():
            return
        future = asyncio.run_coroutine_threadsafe(self.count(user_id, counters), loop)
        future.add_done_callback(_log_failure)


def _log_failure(future: Any) -> None:
    if not future.cancelled() and future.exception() is not None:
        log.warning("memory_usage_not_counted", error=repr(future.exception()))
