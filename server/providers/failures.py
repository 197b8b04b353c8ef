"""What went wrong with a model service, said accurately (LLM, VLM, embeddings, Fish Speech).

Why: the openai SDK raises APIConnectionError both when the endpoint cannot be reached
(connection refused, unknown host) and when a stream that was flowing breaks; a garbage SSE
event surfaces as a bare JSONDecodeError. Telling the user "unreachable" for a broken
stream, or "server error" for a bad response, sends them looking in the wrong place.
"""

from __future__ import annotations

import asyncio
import json
import traceback
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
import httpx
import openai


def causes(exc: BaseException) -> list[BaseException]:
    """The exception and everything it was raised from (or during), outermost first."""
    out: list[BaseException] = []
    e: BaseException | None = exc
    while e is not None and e not in out:
        out.append(e)
        e = e.__cause__ or e.__context__
    return out


def never_connected(exc: BaseException) -> bool:
    """Connection refused, unknown host, or no TCP connection within the connect timeout."""
    return any(
        isinstance(
            e,
            httpx.ConnectError
            | httpx.ConnectTimeout
            | ConnectionRefusedError
            | aiohttp.ClientConnectorError  # the lean stream path (chat_stream.py)
            | aiohttp.ConnectionTimeoutError,
        )
        for e in causes(exc)
    )


def invalid_response(exc: BaseException) -> bool:
    """The endpoint answered, but not in the OpenAI format (bad JSON, bad SSE, bad schema)."""
    for e in causes(exc):
        if isinstance(e, openai.APIResponseValidationError):
            return True
        if isinstance(e, json.JSONDecodeError):  # only when raised by the SDK's parsing
            return any("openai" in f.filename for f in traceback.extract_tb(e.__traceback__))
    return False


class StreamTimeout(Exception):
    """No first token within ``seconds`` (phase "first"), or none for ``seconds`` after the
    stream began (phase "idle")."""

    def __init__(self, phase: str, seconds: float) -> None:
        super().__init__(f"no data for {seconds:g} s ({phase})")
        self.phase, self.seconds = phase, seconds


async def paced[T](stream: AsyncIterator[T], first_s: float, idle_s: float) -> AsyncIterator[T]:
    """Re-yield ``stream``, raising StreamTimeout when the first item takes longer than
    ``first_s`` or a later one longer than ``idle_s``. The inner stream is cancelled then,
    which closes its HTTP request (no retries pile up behind the client's back).

    One timer for the whole stream, moved lazily: each wait only sets its deadline, and the
    timer wakes when a deadline may have passed (an asyncio.timeout per item cost a timer
    and a context per text delta). Only a wait is timed, never the consumer's own work."""
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None
    it = aiter(stream)
    phase, limit = "first", first_s
    deadline = loop.time() + limit
    waiting = fired = False

    def check() -> None:
        nonlocal timer, fired
        now = loop.time()
        if waiting and now >= deadline:
            fired = True
            task.cancel()  # lands in the wait below (the task is suspended in it)
        else:  # an item came meanwhile: look again when the current wait may be over
            timer = loop.call_at(deadline if waiting else now + limit, check)

    timer = loop.call_at(deadline, check)
    try:
        while True:
            deadline = loop.time() + limit
            waiting = True
            try:
                item = await anext(it)
            except StopAsyncIteration:
                return
            except asyncio.CancelledError:
                if fired and task.uncancel() == 0:  # ours alone, not also the caller's
                    raise StreamTimeout(phase, limit) from None
                raise
            finally:
                waiting = False
            phase, limit = "idle", idle_s
            yield item
    finally:
        timer.cancel()
        aclose = getattr(it, "aclose", None)
        if aclose is not None:
            await aclose()


@dataclass(frozen=True)
class LLMFailure:
    code: str
    message: str


def llm_failure(exc: BaseException, *, mid_reply: bool, tries: int) -> LLMFailure | None:
    """The error for a reply the model service failed, or None when ``exc`` is not a model
    service failure (a bug of ours). ``mid_reply``: some text had arrived already."""
    if isinstance(exc, openai.OpenAIError | StreamTimeout) or invalid_response(exc):
        return describe_llm_failure(exc, mid_reply=mid_reply, tries=tries)
    return None


def describe_llm_failure(exc: BaseException, *, mid_reply: bool, tries: int) -> LLMFailure:
    if isinstance(exc, StreamTimeout):
        if exc.phase == "first":
            return LLMFailure(
                "llm_timeout",
                f"The language model accepted the request but sent no reply within "
                f"{exc.seconds:g} s (LLM_FIRST_TOKEN_TIMEOUT_S).",
            )
        return LLMFailure(
            "llm_interrupted",
            f"The language model stopped mid-reply: nothing arrived for {exc.seconds:g} s "
            "(LLM_STREAM_IDLE_TIMEOUT_S). The part received is kept as interrupted.",
        )
    if invalid_response(exc):
        return LLMFailure(
            "llm_invalid_response",
            "The language model endpoint sent an invalid response (not the OpenAI chat "
            "format). Check LLM_BASE_URL points at an OpenAI-compatible /v1 endpoint.",
        )
    if isinstance(exc, openai.APIConnectionError):
        if never_connected(exc):
            return LLMFailure(
                "llm_unreachable",
                f"The language model endpoint could not be reached (connection refused or "
                f"unknown host, {tries} tries). Check LLM_BASE_URL and that the model server "
                "is running.",
            )
        if isinstance(exc, openai.APITimeoutError) and not mid_reply:
            return LLMFailure("llm_timeout", "The language model endpoint did not answer in time.")
        if mid_reply:
            return LLMFailure(
                "llm_interrupted",
                "The language model stopped mid-reply: the connection broke. The part "
                "received is kept as interrupted.",
            )
        return LLMFailure(
            "llm_interrupted",
            "The language model endpoint closed the connection before it replied.",
        )
    if isinstance(exc, openai.AuthenticationError):
        return LLMFailure(
            "llm_error", "The language model endpoint rejected the API key (check LLM_API_KEY)."
        )
    if isinstance(exc, openai.APIStatusError):
        return LLMFailure(
            "llm_error", f"The language model endpoint answered HTTP {exc.status_code}."
        )
    return LLMFailure("llm_error", f"The language model call failed ({type(exc).__name__}).")
