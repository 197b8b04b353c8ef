"""STREAM_FLUSH_MS (server/providers/sse.py Cadence): after a call's first text, what the model
streams is read and handed on at most every ``flush_s``, several tokens a delta; the first
text and the end of the stream are never held, and a cancel is not delayed by the wait."""

from __future__ import annotations

import asyncio
import itertools
import time

import pytest

from server.providers.chat_stream import ChatStream
from tests.fakes.openai_server import FakeOpenAI

HI = [{"role": "user", "content": "hi"}]


def lean(fake: FakeOpenAI) -> ChatStream:
    return ChatStream(
        fake.base_url, "test", "fake-model", temperature=0.7, max_tokens=256, timeout_s=10.0,
        max_retries=0,
    )  # fmt: skip


async def timed_stream(chat: ChatStream, flush_s: float, **kw: object):
    """The call's deltas with the time each was handed on, and its result."""
    got: list[tuple[float, str]] = []
    result = await chat.stream(
        HI, lambda text: got.append((time.monotonic(), text)), flush_s=flush_s, **kw
    )
    return got, result


async def test_after_the_first_delta_text_goes_on_at_most_every_flush(
    fake_openai: FakeOpenAI,
) -> None:
    tokens = [f"w{i} " for i in range(24)]
    fake_openai.queue_reply(tokens=tokens, token_ms=10)
    chat = lean(fake_openai)
    try:
        got, result = await timed_stream(chat, 0.08)
    finally:
        await chat.aclose()
    texts = [t for _, t in got]
    assert texts[0] == "w0 "  # the first token alone, at once
    assert "".join(texts) == "".join(tokens) == result.content  # the same text, in order
    assert len(texts) < len(tokens)  # several tokens a delta
    gaps = [b - a for (a, _), (b, _) in itertools.pairwise(got[:-1])]
    assert gaps and min(gaps) >= 0.075  # never more often than the cadence (the end aside)


async def test_the_end_of_the_stream_and_its_tool_calls_are_not_held(
    fake_openai: FakeOpenAI,
) -> None:
    """A cadence far longer than the reply: the first token goes at once, everything else
    (the rest of the text, then the tool call) as soon as the body ends, not at the tick."""
    tokens = ["Let ", "me ", "look ", "that ", "up."]
    call = {"name": "schedule_list", "arguments": {"days": 2}}
    fake_openai.queue_reply(tokens=tokens, tool_calls=[call], token_ms=15)
    chat = lean(fake_openai)
    try:
        t0 = time.monotonic()
        got, result = await timed_stream(chat, 1.0)
        took = time.monotonic() - t0
    finally:
        await chat.aclose()
    assert [t for _, t in got] == ["Let ", "me look that up."]
    assert [(c.name, c.arguments) for c in result.tool_calls] == [("schedule_list", '{"days": 2}')]
    t_done = fake_openai.chat_requests()[-1]["t_done"]
    assert got[-1][0] - t_done < 0.3 and took < 0.8  # the 1 s tick was not waited for


async def test_a_cancel_during_the_wait_ends_the_call_at_once(fake_openai: FakeOpenAI) -> None:
    fake_openai.queue_reply(tokens=[f"w{i} " for i in range(100)], token_ms=10)
    chat = lean(fake_openai)
    got: list[str] = []
    first = asyncio.Event()

    def on_delta(text: str) -> None:
        got.append(text)
        first.set()

    try:
        call = asyncio.ensure_future(chat.stream(HI, on_delta, flush_s=2.0))
        await first.wait()
        await asyncio.sleep(0.1)  # tokens are waiting to be read
        t0 = time.monotonic()
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        assert time.monotonic() - t0 < 0.5
    finally:
        await chat.aclose()
    assert got == ["w0 "]  # nothing went on after the cancel


async def test_flush_0_hands_on_each_token_as_it_arrives() -> None:
    with FakeOpenAI(ttft_ms=0, token_ms=40) as fake:
        fake.queue_reply(tokens=["One ", "two ", "three."])
        chat = lean(fake)
        try:
            got, _ = await timed_stream(chat, 0.0)
        finally:
            await chat.aclose()
    assert [t for _, t in got] == ["One ", "two ", "three."]
