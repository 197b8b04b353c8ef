"""Reading a streamed server-sent-events body (chat_stream.py): the event parser, the
body's read timeout, the drain after [DONE]."""

from __future__ import annotations

import asyncio
import contextlib

import aiohttp

DRAIN_S = 1.0  # how long the end of a body may take after [DONE]


def _data(line: bytes) -> bytes:
    return line[6:] if line[5:6] == b" " else line[5:]


class SSEParser:
    """Splits a byte stream into server-sent events: (event name, data) each; comments,
    ids and retry hints are skipped."""

    def __init__(self) -> None:
        self.buf = b""
        self.data: list[bytes] = []
        self.event: str | None = None

    def feed(self, block: bytes) -> list[tuple[str | None, bytes]]:
        # The usual block, one whole "data: ..." event with nothing pending, needs no line
        # loop (one per streamed token).
        if not self.buf and not self.data and self.event is None and block[:6] == b"data: ":
            body = block[6:-2]
            if block[-2:] == b"\n\n" and b"\n" not in body and b"\r" not in body:
                return [(None, body)]
        self.buf += block
        if b"\n" not in block:
            return []
        *lines, self.buf = self.buf.split(b"\n")
        out = []
        for line in lines:
            if line.endswith(b"\r"):
                line = line[:-1]
            if not line:
                if self.data:
                    out.append((self.event, b"\n".join(self.data)))
                self.data, self.event = [], None
            elif line.startswith(b"data:"):
                self.data.append(_data(line))
            elif line.startswith(b"event:"):
                self.event = line[6:].strip().decode()
        return out

    def end(self) -> list[tuple[str | None, bytes]]:
        """The last event, when the body ended without its blank line."""
        line = self.buf.rstrip(b"\r")
        if line.startswith(b"data:"):
            self.data.append(_data(line))
        out = [(self.event, b"\n".join(self.data))] if self.data else []
        self.buf, self.data, self.event = b"", [], None
        return out


async def drain(resp: aiohttp.ClientResponse) -> None:
    """Read the body to its end after [DONE], so the connection goes back to the pool
    (a response closed mid-body closes its connection: a new TCP connection per turn)."""
    with contextlib.suppress(aiohttp.ClientError, TimeoutError):
        async with asyncio.timeout(DRAIN_S):
            await resp.read()


class ReadWatch:
    """The body's read timeout: nothing received for ``limit`` seconds cancels the task
    reading it. The reader only stamps ``last`` per chunk; one timer looks at it when the
    limit may have passed (aiohttp's sock_read cancels and makes a timer per chunk)."""

    def __init__(self, limit: float) -> None:
        self.loop = asyncio.get_running_loop()
        self.task = asyncio.current_task()
        self.limit = limit
        self.last = self.loop.time()
        self.fired = False
        self.timer = self.loop.call_at(self.last + limit, self._check)

    def _check(self) -> None:
        if self.loop.time() - self.last >= self.limit and self.task is not None:
            self.fired = True
            self.task.cancel()
        else:
            self.timer = self.loop.call_at(self.last + self.limit, self._check)

    def ours(self) -> bool:
        """Whether a CancelledError is this watch's alone (not also the caller's)."""
        return self.fired and self.task is not None and self.task.uncancel() == 0

    def stop(self) -> None:
        self.timer.cancel()


class Cadence:
    """STREAM_FLUSH_MS: once text was handed on, the body is read again only when ``every``
    seconds have passed, or at once when the body ends. The events that arrive meanwhile
    wait in aiohttp's buffer, so one wake-up reads, parses and hands on several tokens (one
    delta downstream, one frame to the client) instead of one each. The first text of a
    call is never held; ``every`` 0 reads each block as it comes."""

    def __init__(self, content: aiohttp.StreamReader, every: float) -> None:
        self.loop = asyncio.get_running_loop()
        self.content = content
        self.every = every
        self.due = 0.0  # when the next read may start; 0: nothing handed on yet
        self.waiter: asyncio.Future[None] | None = None
        if every > 0:
            content.on_eof(self._wake)  # the end of the body is never held

    def handed_on(self) -> None:
        """Text went downstream now: the next read waits until ``every`` has passed."""
        if self.every > 0:
            self.due = self.loop.time() + self.every

    async def wait(self) -> None:
        """Before a read: wait out the rest of the interval (nothing if it has passed)."""
        if self.due == 0 or self.content.is_eof() or self.loop.time() >= self.due:
            return
        self.waiter = self.loop.create_future()
        timer = self.loop.call_at(self.due, self._wake)
        try:
            await self.waiter
        finally:
            timer.cancel()
            self.waiter = None

    def _wake(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)
