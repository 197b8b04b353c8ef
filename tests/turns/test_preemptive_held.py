"""server/turns/preemptive.py: comparing a held start's words with the turn's, and the
held stream (consumed at once, released only through the gate, cancelled with nothing out)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from server.turns.preemptive import held, words


def test_words_ignore_case_punctuation_and_spacing():
    assert words("I would like a table for two at...") == words("i would like a table, for two at")
    assert words("  내일   같이 갈까요? ") == words("내일 같이 갈까요")
    assert words("for two at") != words("for two at seven")


class Source:
    """An async stream that records how far it was read and whether it was closed."""

    def __init__(self, items: list[str], fail: Exception | None = None) -> None:
        self.items, self.fail = items, fail
        self.read: list[str] = []
        self.closed = asyncio.Event()

    async def stream(self) -> AsyncIterator[str]:
        try:
            for item in self.items:
                self.read.append(item)
                yield item
                await asyncio.sleep(0)
            if self.fail is not None:
                raise self.fail
            await asyncio.Event().wait()  # like a graph waiting at its gate
        finally:
            self.closed.set()


async def test_held_reads_at_once_and_releases_in_order_through_the_gate():
    src, gate = Source(["a", "b", "c"]), asyncio.Event()
    waiting = asyncio.ensure_future(held(src.stream(), gate))
    for _ in range(20):
        await asyncio.sleep(0)
    assert src.read == ["a", "b", "c"] and not waiting.done()  # read, nothing released
    gate.set()
    released = await waiting
    assert [await anext(released) for _ in range(3)] == ["a", "b", "c"]
    await released.aclose()
    await asyncio.wait_for(src.closed.wait(), 1)


async def test_held_cancelled_before_the_gate_closes_the_stream():
    src, gate = Source(["a"]), asyncio.Event()
    waiting = asyncio.ensure_future(held(src.stream(), gate))
    for _ in range(5):
        await asyncio.sleep(0)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert src.closed.is_set()


async def test_held_raises_a_failure_after_what_came_before_it():
    src, gate = Source(["a"], fail=RuntimeError("model down")), asyncio.Event()
    gate.set()
    released = await held(src.stream(), gate)
    assert await anext(released) == "a"
    with pytest.raises(RuntimeError, match="model down"):
        await anext(released)
