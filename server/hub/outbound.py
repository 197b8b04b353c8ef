"""The outbound side of a live connection: one bounded queue of frames and the writer that
drains it to the socket. It exists apart from the session core so that back-pressure (drop
analysis events, coalesce text deltas, close a client that stops reading) lives in one
place; see docs/protocol.md, "Back-pressure"."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from starlette.websockets import WebSocket, WebSocketDisconnect

from server import jsonout

if TYPE_CHECKING:
    from structlog.typing import FilteringBoundLogger

    from server.config import Settings


@dataclass
class TextDeltas:
    """Text deltas of one stream that wait in the queue as ONE frame: deltas that arrive
    while it is still queued (and nothing was queued after it) are appended, so a client
    that reads slower than the model streams gets fewer, larger frames. `frame` is the
    event without its text; the writer puts the joined text in `field`."""

    key: object
    frame: dict[str, Any]
    field: str
    parts: list[str]
    size: int

    def render(self) -> str:
        return jsonout.dumps_flat(self.frame | {self.field: "".join(self.parts)})


# What the writer sends: text, bytes, text whose sender waits until it was written, or
# text deltas joined when written.
Outbound = str | bytes | tuple[str, asyncio.Future[bool]] | TextDeltas


class SlowConsumer(Exception):
    """The client did not read for ws_send_timeout_s while we had data that must not drop."""


class OutboundQueue:
    """The bounded outbound queue, its writer and the connection's close (a base of
    SessionCore): events queue here, and the writer sends them in order."""

    log: FilteringBoundLogger  # bound to the session by SessionCore

    def __init__(self, ws: WebSocket, settings: Settings) -> None:
        self.ws = ws
        self.settings = settings
        self.outbound: asyncio.Queue[Outbound | None] = asyncio.Queue(
            maxsize=settings.ws_outbound_queue
        )
        self.dropped_events = 0
        self._open_deltas: TextDeltas | None = None  # the queue's last item, not yet taken
        self._closed = asyncio.Event()
        self._close_frame = (1000, "")  # code and reason sent when the connection ends
        self.slow_consumer = False

    async def _shutdown_writer(self, writer: asyncio.Task[None]) -> None:
        """Flush what is queued (e.g. session.ended) and close normally, unless the client
        stopped reading: then drop it all, since even a close frame would never leave."""
        self._closed.set()
        if not self.slow_consumer and not writer.done():
            with contextlib.suppress(asyncio.QueueFull):
                self.outbound.put_nowait(None)
            await asyncio.wait({writer}, timeout=self.settings.ws_send_timeout_s)
            if writer.done():
                with contextlib.suppress(Exception):
                    await self.ws.close(*self._close_frame)
        writer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await writer

    def close(self, code: int = 1000, reason: str = "") -> None:
        """End the connection: run() flushes the queue, then closes with this code."""
        self._close_frame = (code, reason)
        self._closed.set()

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    async def send(self, event: dict[str, Any], *, droppable: bool = False) -> None:
        await self._put(jsonout.dumps(event), droppable)

    async def send_delta(self, key: object, event: dict[str, Any], field: str) -> None:
        """Send a text delta (its text is `event[field]`). If the last queued frame is
        a delta of the same stream (`key`) that the writer has not taken yet, the text joins
        it instead: order and joined text stay the same, nothing waits when the queue is
        empty, and a frame grows to at most ws_delta_coalesce_chars."""
        delta: str = event[field]
        open_ = self._open_deltas
        cap = self.settings.ws_delta_coalesce_chars
        if open_ is not None and open_.key == key and open_.size + len(delta) <= cap:
            open_.parts.append(delta)
            open_.size += len(delta)
            return
        await self._put(TextDeltas(key, event, field, [delta], len(delta)), False)

    async def send_bytes(self, data: bytes) -> None:
        await self._put(data, False)

    async def send_confirmed(self, event: dict[str, Any]) -> bool:
        """Send and wait until the event was written to the socket: True, or False when the
        connection closed first (for deliveries that must be acknowledged by the write)."""
        written = asyncio.get_running_loop().create_future()
        try:
            await self._put((jsonout.dumps(event), written), False)
        except SlowConsumer:  # the client stopped reading: it was never written
            return False
        closed = asyncio.ensure_future(self._closed.wait())
        try:
            await asyncio.wait({written, closed}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            closed.cancel()
        return written.done() and not written.cancelled() and written.result()

    async def _put(self, item: Outbound, droppable: bool) -> None:
        if self._closed.is_set():
            return
        try:
            self.outbound.put_nowait(item)
            self._queued(item)
            return
        except asyncio.QueueFull:
            if droppable:  # analysis events: the next one supersedes this one
                self.dropped_events += 1
                return
        try:
            async with asyncio.timeout(self.settings.ws_send_timeout_s):
                await self.outbound.put(item)
                self._queued(item)  # same step as the put: nothing was queued in between
        except TimeoutError:
            self.log.warning("slow_consumer_closed", queued=self.outbound.qsize())
            self.slow_consumer = True
            self._closed.set()
            raise SlowConsumer from None

    def _queued(self, item: Outbound) -> None:
        """Only the queue's last item may take more deltas (anything else keeps order)."""
        self._open_deltas = item if isinstance(item, TextDeltas) else None

    async def _writer(self) -> None:
        try:
            while True:
                item = await self.outbound.get()
                if item is None:
                    return
                if isinstance(item, TextDeltas):
                    if item is self._open_deltas:  # taken: later deltas start a new frame
                        self._open_deltas = None
                    await self.ws.send_text(item.render())
                elif isinstance(item, tuple):  # (text, future): tell the sender it was written
                    await self.ws.send_text(item[0])
                    if not item[1].done():
                        item[1].set_result(True)
                elif isinstance(item, str):
                    await self.ws.send_text(item)
                else:
                    await self.ws.send_bytes(item)
        except (WebSocketDisconnect, RuntimeError, OSError):
            self._closed.set()
