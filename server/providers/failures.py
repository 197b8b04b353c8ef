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
    which closes its HTTP request (no retries pile up behind the client's back)."""
    it = aiter(stream)
    first = True
    try:
        while True:
            limit = first_s if first else idle_s
            try:
                async with asyncio.timeout(limit):
                    item = await anext(it)
            except StopAsyncIteration:
                return
            except TimeoutError:
                raise StreamTimeout("first" if first else "idle", limit) from None
            first = False
            yield item
    finally:
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
