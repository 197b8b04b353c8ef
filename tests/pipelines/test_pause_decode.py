"""``PauseDecode.result``: a pause's decode that was cancelled (speech went on) is no
transcript, but the final transcript awaiting it must stop when its own task is cancelled
(the session closed)."""

from __future__ import annotations

import asyncio

import pytest

from server.pipelines.pause_decode import PauseDecode


async def test_a_cancelled_decode_is_no_transcript() -> None:
    decode = asyncio.create_task(asyncio.sleep(10))
    await asyncio.sleep(0)
    decode.cancel()
    assert await PauseDecode.result(decode) is None  # type: ignore[arg-type]


async def test_the_final_awaiting_a_decode_stops_when_cancelled() -> None:
    """The session's tasks are cancelled when it closes. The final transcript waiting for
    the pause's decode swallowed that cancel and went on: from outside (load 7-9) a closed
    session's utterance was transcribed 90 s later, judged an interruption and started a
    reply (an LLM call) for a session nobody was connected to."""
    decode = asyncio.create_task(asyncio.sleep(10))
    went_on = False

    async def final() -> None:
        nonlocal went_on
        await PauseDecode.result(decode)  # type: ignore[arg-type]
        went_on = True

    waiter = asyncio.create_task(final())
    await asyncio.sleep(0)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert not went_on
    decode.cancel()
