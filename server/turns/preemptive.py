"""Preemptive generation: the reply starts on a pause's words before the turn is confirmed,
so the model's time to first token overlaps the end-of-turn wait (the session side is
server/hub/preemptive.py).

Nothing of a held start may reach the client or the store before it is confirmed. ``held``
runs the reply's stream in a task of its own (the model streams on; LangGraph's own gate,
``TurnContext.gate``, stops it before any tool, memory write or end of the turn) and keeps
what it yields; the session sees none of it until the gate opens, then all of it in order.
Cancelled before that, the stream is cancelled with it and nothing was released."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator

_NOT_WORD = re.compile(r"[^\w]+")


def words(text: str) -> str:
    """The words of a transcript, for comparing two: case, punctuation and spacing aside."""
    return " ".join(_NOT_WORD.sub(" ", text.casefold()).split())


async def held[T](stream: AsyncIterator[T], gate: asyncio.Event) -> AsyncIterator[T]:
    """``stream``, consumed from now on, released once ``gate`` is set (this waits for it).
    A failure of the stream is raised in order, after what it yielded before it."""
    kept: asyncio.Queue[tuple[str, T | BaseException | None]] = asyncio.Queue()

    async def pump() -> None:
        try:
            async for item in stream:
                kept.put_nowait(("item", item))
        except Exception as e:  # reported once confirmed, like any reply's failure
            kept.put_nowait(("error", e))
        else:
            kept.put_nowait(("end", None))

    # the stream lives in one task (LangGraph keeps context variables across its steps)
    task = asyncio.create_task(pump())
    try:
        await gate.wait()
    except BaseException:
        task.cancel()
        await asyncio.wait({task})
        raise

    async def released() -> AsyncIterator[T]:
        try:
            while True:
                kind, value = await kept.get()
                if kind == "end":
                    return
                if kind == "error":
                    assert isinstance(value, BaseException)
                    raise value
                yield value  # type: ignore[misc]
        finally:
            if not task.done():
                task.cancel()
                await asyncio.wait({task})

    return released()
