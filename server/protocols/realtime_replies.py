"""A reply as OpenAI Realtime response events (the reply half of
server/protocols/realtime.py): response.created, the message item and its content part,
text or audio-transcript deltas, audio, function_call items for the client's functions,
and, once the reply is stored, the .done events and response.done."""

from __future__ import annotations

import asyncio
import base64
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from server.protocols.realtime_wire import (
    assistant_item,
    event_id,
    finished_response,
    function_call_item,
    response_shape,
)
from server.turns.preemptive import words

if TYPE_CHECKING:
    from server.agent.graph import ClientCall
    from server.hub.responses import ActiveResponse
    from server.hub.session import Session
    from server.pipelines.speech_out import SpokenChunk


@dataclass
class StartingTurn:
    """A user item whose turn is stored and starting (a typed item response.create
    answers, or a transcript that starts a turn): response.created names its message."""

    item_id: str
    text: str
    named: asyncio.Event = field(default_factory=asyncio.Event)


class RealtimeReplies:
    """Mixed into RealtimeEvents, which sets these up."""

    s: Session
    _send: Callable[..., Awaitable[None]]
    _audio_on: Callable[[], bool]
    _link: Callable[[str], str | None]
    end_one_response: Callable[[], None]
    items: dict[int, str]  # response number -> assistant item id
    done_items: dict[int, str]  # the same, for the last finished response
    before: dict[str, str | None]  # item id -> the item before it (for .done)
    awaiting: StartingTurn | None  # the user item of the turn starting now
    stored: dict[str, str]  # item id -> its stored message (conversation.item.delete)
    calls: dict[int, list[dict[str, Any]]]  # each response's function_call items
    open_calls: dict[str, ClientCall]
    _usage: dict[str, int]

    def _where(self, r: ActiveResponse) -> dict[str, Any]:
        return {"response_id": r.id, "item_id": self.items[r.number], "output_index": 0}

    async def response_created(self, r: ActiveResponse) -> None:
        turn = self.awaiting
        if turn is not None and r.trigger is None and r.answers is None:
            if words(turn.text) == words(r.user_text):  # the user item's stored message
                self.stored[turn.item_id] = r.message_id
                self.awaiting = None
                turn.named.set()
        item_id = f"item_{r.id}"
        self.items[r.number] = item_id
        await self._send(
            "response.created",
            response=response_shape(self.s, r, "in_progress", [], self._audio_on()),
        )
        item = assistant_item(item_id, [], "in_progress")
        await self._send("response.output_item.added", response_id=r.id, output_index=0, item=item)
        await self._send("conversation.item.added", previous_item_id=self._link(item_id), item=item)
        part = (
            {"type": "audio", "transcript": ""}
            if self._audio_on()
            else {"type": "text", "text": ""}
        )
        await self._send(
            "response.content_part.added", **self._where(r), content_index=0, part=part
        )

    async def text_delta(self, r: ActiveResponse, delta: str) -> None:
        kind = (
            "response.output_audio_transcript.delta"
            if self._audio_on()
            else "response.output_text.delta"
        )
        where = self._where(r)
        event = {"type": kind, "event_id": event_id(), **where, "content_index": 0, "delta": delta}
        await self.s.send_delta((r.id, kind), event, "delta")

    async def client_call(self, r: ActiveResponse, call: ClientCall) -> None:
        """A function_call output item after the message (output_index 1, 2, ...), its
        arguments in one delta; the client runs it and answers with function_call_output."""
        done = self.calls.setdefault(r.number, [])
        where = {"response_id": r.id, "output_index": 1 + len(done)}
        item_id = f"item_{uuid.uuid4().hex[:16]}"
        item = function_call_item(item_id, call.name, call.call_id, "", "in_progress")
        await self._send("response.output_item.added", **where, item=item)
        previous = self._link(item_id)
        await self._send("conversation.item.added", previous_item_id=previous, item=item)
        ids = {"item_id": item_id, "call_id": call.call_id}
        await self._send(
            "response.function_call_arguments.delta", **where, **ids, delta=call.arguments
        )
        await self._send(
            "response.function_call_arguments.done",
            **where,
            **ids,
            name=call.name,
            arguments=call.arguments,
        )
        item = item | {"status": "completed", "arguments": call.arguments}
        await self._send("response.output_item.done", **where, item=item)
        await self._send(
            "conversation.item.done", previous_item_id=self.before.pop(item_id, None), item=item
        )
        done.append(item)
        self.open_calls[call.call_id] = call

    async def audio_chunk(self, r: ActiveResponse, seq: int, data: bytes) -> None:
        await self._send(
            "response.output_audio.delta",
            **self._where(r),
            content_index=0,
            delta=base64.b64encode(data).decode(),
        )

    async def audio_visemes(
        self, r: ActiveResponse, seq: int, keyframes: list[dict[str, Any]], emotion: str | None
    ) -> None:
        """Realtime has no mouth event; its clients animate from the audio themselves."""

    async def audio_done(self, r: ActiveResponse, chunks: int, duration_ms: int) -> None:
        await self._send("response.output_audio.done", **self._where(r), content_index=0)

    async def speech_sentence(self, r: ActiveResponse, index: int, chunk: SpokenChunk) -> None:
        """Realtime has no sentence event."""

    async def response_done(
        self,
        r: ActiveResponse,
        status: str,
        text: str,
        timings: dict[str, int | None],
        usage: dict[str, int],
    ) -> None:
        self._usage = usage  # sent with response.done once the reply is stored

    async def response_stored(self, r: ActiveResponse, status: str, text: str) -> None:
        where = self._where(r)
        audio = self._audio_on()
        if audio:
            await self._send(
                "response.output_audio_transcript.done", **where, content_index=0, transcript=text
            )
            part: dict[str, Any] = {"type": "audio", "transcript": text}
        else:
            await self._send("response.output_text.done", **where, content_index=0, text=text)
            part = {"type": "text", "text": text}
        await self._send("response.content_part.done", **where, content_index=0, part=part)
        kind = "output_audio" if audio else "output_text"
        content = [{"type": kind, "transcript": text} if audio else {"type": kind, "text": text}]
        state = "completed" if status == "completed" else "incomplete"
        item = assistant_item(where["item_id"], content, state)
        await self._send("response.output_item.done", response_id=r.id, output_index=0, item=item)
        previous = self.before.pop(item["id"], None)
        await self._send("conversation.item.done", previous_item_id=previous, item=item)
        usage = getattr(self, "_usage", {}) or {}
        output = [item, *self.calls.pop(r.number, [])]
        body = finished_response(self.s, r, status, output, usage, audio)
        await self._send("response.done", response=body)
        self.end_one_response()
        if text:  # stored: the client may delete it (conversation.item.delete)
            self.stored[where["item_id"]] = r.reply_id
        self.done_items = {r.number: where["item_id"]}
        self.items.pop(r.number, None)
