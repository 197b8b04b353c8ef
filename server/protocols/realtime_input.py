"""OpenAI Realtime client events as session-core calls (the input half of
server/protocols/realtime.py): session.update, input audio, conversation items (user
messages, context lines, function outputs, retrieve, delete), truncate; response.create and
cancel are in realtime_response_create.py."""

from __future__ import annotations

import asyncio
import contextlib
import math
import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from server.hub import context_items
from server.hub.protocol import ProtocolError
from server.protocols.realtime_audio_item import b64_audio, transcribe_part
from server.protocols.realtime_context import context_text
from server.protocols.realtime_response_create import ResponseRequests
from server.protocols.realtime_session import (
    client_tools,
    session_changes,
    tool_choice,
)
from server.protocols.realtime_wire import Resampler, chat_schema, user_item

if TYPE_CHECKING:
    from server.agent.graph import ClientCall

FRAME_SAMPLES = 1_600  # 100 ms at 16 kHz: our largest mic frame
NAMING_WAIT_S = 5.0  # a delete of a starting turn's item waits for its response.created


class RealtimeInput(ResponseRequests):
    """Mixed into RealtimeEvents, which sets these up (and those ResponseRequests names)."""

    resample: Resampler
    half_sample: bytes  # the first byte of a sample whose second comes with the next append
    last_item: str | None
    items: dict[int, str]
    done_items: dict[int, str]  # the last finished response's assistant item
    tools: list[dict[str, Any]]
    tool_choice: str
    open_calls: dict[str, ClientCall]
    known: dict[str, dict[str, Any]]  # the latest items by id (conversation.item.retrieve)
    _sync_turn_detection: Callable[[], None]
    _link: Callable[[str], str | None]
    flush_partial: Callable[[str], Awaitable[None]]

    async def on_session_update(self, obj: dict[str, Any]) -> None:
        sess = obj.get("session")
        changes = session_changes(self.s.services, sess)  # checks that it is an object
        ours = {t["function"]["name"] for t in self.s.services.agent.tool_schemas}
        tools, choice = client_tools(sess, ours), tool_choice(sess)
        if tools is not None:
            self.tools = tools
        if choice is not None:
            self.tool_choice = choice
        await self.update_session_settings(changes)
        self._sync_turn_detection()  # session.updated went out

    def client_tools(self) -> list[dict[str, Any]]:
        return [chat_schema(t) for t in self.tools] if self.tool_choice != "none" else []

    async def on_append(self, obj: dict[str, Any]) -> None:
        pcm = b64_audio(obj.get("audio"), "audio")
        # the buffer is bytes, as OpenAI's: an append may end inside a sample (a client
        # chunking a stream by bytes), whose other half comes with the next one
        pcm = self.half_sample + pcm
        cut = len(pcm) - len(pcm) % 2
        pcm, self.half_sample = pcm[:cut], pcm[cut:]
        data = self.resample(pcm) if pcm else b""
        for i in range(0, len(data), FRAME_SAMPLES * 2):
            await self.s.mic_audio(data[i : i + FRAME_SAMPLES * 2])

    async def on_commit(self, obj: dict[str, Any]) -> None:
        self.half_sample = b""
        item = await self.s.commit_audio()
        if item is None:
            raise ProtocolError(
                "input_audio_buffer_commit_empty", "The input audio buffer holds no audio."
            )
        await self._committed(item)

    async def _committed(self, item: str) -> None:
        previous = self._link(item)
        await self._send("input_audio_buffer.committed", previous_item_id=previous, item_id=item)
        user = user_item(item, [{"type": "input_audio", "transcript": None}], "in_progress")
        await self._send("conversation.item.added", previous_item_id=previous, item=user)
        await self.flush_partial(item)

    async def on_clear(self, obj: dict[str, Any]) -> None:
        self.half_sample = b""
        await self.s.clear_audio()
        await self._send("input_audio_buffer.cleared")

    async def on_item_create(self, obj: dict[str, Any]) -> None:
        item = obj.get("item")
        kind = item.get("type") if isinstance(item, dict) else None
        if kind == "function_call_output":
            return await self._function_output(item)  # type: ignore[arg-type]
        if kind == "function_call":
            raise ProtocolError("unsupported_event", "Function calls come from the model here.")
        if not isinstance(item, dict) or kind != "message":
            raise ProtocolError("unsupported_event", "Only message items can be created here.")
        if item.get("role") in ("system", "assistant"):
            return await self._context_item(item)
        if item.get("role") != "user":
            raise ProtocolError("invalid_request_error", "role is user, system or assistant.")
        content = item.get("content")
        if not isinstance(content, list) or not content:
            raise ProtocolError("invalid_request_error", "A message needs content parts.")
        texts: list[str] = []
        shown = list(content)  # what item.added / .done say: a clip as its transcript
        for n, part in enumerate(content):
            kind = part.get("type") if isinstance(part, dict) else None
            if kind == "input_text" and isinstance(part.get("text"), str):
                texts.append(part["text"])
            elif kind == "input_audio":
                texts.append(await transcribe_part(self.s, part))
                shown[n] = {"type": "input_audio", "transcript": texts[-1]}
            elif kind == "input_image" and isinstance(part.get("image_url"), str):
                url = part["image_url"]
                if not url.startswith("data:") or "," not in url:
                    raise ProtocolError("invalid_image", "image_url must be a data: URL.")
                await self.s.image_b64("screen", url.split(",", 1)[1], None)
            else:
                raise ProtocolError(
                    "unsupported_event",
                    "Content parts: input_text, input_audio and input_image only.",
                )
        text = "\n".join(t for t in texts if t.strip())
        if len(text) > self.s.settings.max_input_chars:
            limit = self.s.settings.max_input_chars
            raise ProtocolError("message_too_large", f"A message is limited to {limit} characters.")
        item_id = self._new_item_id(item)
        if text:
            self.pending.append((item_id, text))
        done = user_item(item_id, shown, "completed")
        await self._send("conversation.item.added", previous_item_id=self.last_item, item=done)
        await self._send("conversation.item.done", previous_item_id=self.last_item, item=done)
        self.last_item = item_id

    async def _context_item(self, item: dict[str, Any]) -> None:
        """A system note or an assistant line: stored and in the model's history (the next
        response's prompt has it) before item.added / .done say so."""
        role = item["role"]
        text = context_text(role, item.get("content"), self.s.settings.max_input_chars)
        item_id = self._new_item_id(item)
        self.stored[item_id] = await context_items.add_line(self.s, role, text)
        kind = "input_text" if role == "system" else "output_text"
        done = user_item(item_id, [{"type": kind, "text": text}], "completed") | {"role": role}
        await self._send("conversation.item.added", previous_item_id=self.last_item, item=done)
        await self._send("conversation.item.done", previous_item_id=self.last_item, item=done)
        self.last_item = item_id

    def _new_item_id(self, item: dict[str, Any]) -> str:
        """The client's id for its item (unique in the conversation), or a new one."""
        item_id = item.get("id")
        if not isinstance(item_id, str):
            return f"item_{uuid.uuid4().hex[:16]}"
        if item_id in self.stored or item_id in dict(self.pending):
            raise ProtocolError("invalid_request_error", f"Item {item_id!r} already exists.")
        return item_id

    async def on_item_delete(self, obj: dict[str, Any]) -> None:
        """Any message item: a user's (typed or spoken), a system or assistant line created
        here, or a reply. Gone from the transcript and from the next prompts; a user item
        still waiting for response.create is dropped from it."""
        item_id = obj.get("item_id")
        waiting = [p for p in self.pending if p[0] == item_id]
        message_id = self.stored.get(item_id) if isinstance(item_id, str) else None
        turn = self.awaiting
        if message_id is None and turn is not None and turn.item_id == item_id:
            with contextlib.suppress(TimeoutError):  # its response is starting: it names it
                async with asyncio.timeout(NAMING_WAIT_S):
                    await turn.named.wait()
            message_id = self.stored.get(item_id)
        if waiting:
            self.pending.remove(waiting[0])
        elif message_id is None or not await context_items.delete_line(self.s, message_id):
            raise ProtocolError(
                "item_delete_invalid_item_id", f"No item {item_id!r} in this conversation."
            )
        self.stored.pop(item_id, None)  # type: ignore[arg-type]
        self.known.pop(item_id, None)  # type: ignore[arg-type]
        for replies in (self.items, self.done_items):  # a deleted reply cannot be truncated
            for number in [n for n, i in replies.items() if i == item_id]:
                del replies[number]
        await self._send("conversation.item.deleted", item_id=item_id)

    async def _function_output(self, item: dict[str, Any]) -> None:
        """The client ran a function the model called: its output waits for
        response.create, which continues the turn with it."""
        call_id = item.get("call_id")
        call = self.open_calls.get(call_id) if isinstance(call_id, str) else None
        if call is None:
            raise ProtocolError(
                "item_not_found", f"No function call {item.get('call_id')!r} waits for output."
            )
        output = item.get("output")
        if not isinstance(output, str):
            raise ProtocolError("invalid_request_error", "A function_call_output needs output.")
        if len(output) > self.s.settings.max_input_chars:
            limit = self.s.settings.max_input_chars
            raise ProtocolError("message_too_large", f"output is limited to {limit} characters.")
        del self.open_calls[call.call_id]
        self.answers.append((call, output))
        item_id = (
            item.get("id") if isinstance(item.get("id"), str) else f"item_{uuid.uuid4().hex[:16]}"
        )
        done = {"id": item_id, "object": "realtime.item", "type": "function_call_output"}
        done |= {"status": "completed", "call_id": call.call_id, "output": output}
        await self._send("conversation.item.added", previous_item_id=self.last_item, item=done)
        await self._send("conversation.item.done", previous_item_id=self.last_item, item=done)
        self.last_item = item_id

    async def on_retrieve(self, obj: dict[str, Any]) -> None:
        item_id = obj.get("item_id")
        item = self.known.get(item_id) if isinstance(item_id, str) else None
        if item is None:
            raise ProtocolError(  # OpenAI's code: Pipecat's client waits for exactly this one
                "item_retrieve_invalid_item_id", f"No item {item_id!r} in this conversation."
            )
        await self._send("conversation.item.retrieved", item=item)

    async def on_truncate(self, obj: dict[str, Any]) -> None:
        item_id, end = obj.get("item_id"), obj.get("audio_end_ms")
        if not isinstance(item_id, str):  # malformed, not an unknown item
            raise ProtocolError("invalid_request_error", "item_id is the assistant item's id.")
        r = self.s.response
        # the reply being generated, or the last one done (the client may still play it)
        if r is None or item_id not in (self.items.get(r.number), self.done_items.get(r.number)):
            raise ProtocolError("item_not_found", f"No playing assistant item {item_id!r}.")
        if obj.get("content_index", 0) != 0 or isinstance(obj.get("content_index"), bool):
            raise ProtocolError("invalid_request_error", "content_index is 0: one part per item.")
        if not isinstance(end, int) or isinstance(end, bool) or end < 0:
            raise ProtocolError("invalid_request_error", "audio_end_ms is a non-negative integer.")
        sent_ms = math.ceil(r.speech.duration_ms) if r.speech is not None else 0
        if r.played_ms is not None:  # truncated before: the item's audio is that long now
            sent_ms = min(sent_ms, r.played_ms)
        if end > sent_ms:  # as OpenAI answers: the client cannot have played more than that
            raise ProtocolError(
                "invalid_value", f"Audio content of {sent_ms}ms is already shorter than {end}ms"
            )
        # the client stopped playing it: so does the echo canceller's reference (else AEC3
        # takes the user's next words for double talk over an echo no speaker plays)
        self.s.perception.reply_cut(r.number)
        if r.finished:  # stored as heard before it is acknowledged
            await self.s.truncate_done(r, end)
        else:  # its cancel settles it
            self.s.played_to(r, end)
        await self._send(
            "conversation.item.truncated", item_id=item_id, content_index=0, audio_end_ms=end
        )


HANDLERS = {
    "session.update": RealtimeInput.on_session_update,
    "input_audio_buffer.append": RealtimeInput.on_append,
    "input_audio_buffer.commit": RealtimeInput.on_commit,
    "input_audio_buffer.clear": RealtimeInput.on_clear,
    "conversation.item.create": RealtimeInput.on_item_create,
    "response.create": RealtimeInput.on_response_create,
    "response.cancel": RealtimeInput.on_response_cancel,
    "conversation.item.truncate": RealtimeInput.on_truncate,
    "conversation.item.retrieve": RealtimeInput.on_retrieve,
    "conversation.item.delete": RealtimeInput.on_item_delete,
}
