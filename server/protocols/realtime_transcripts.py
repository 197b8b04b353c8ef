"""The user's speech as OpenAI Realtime events (the listening half of
server/protocols/realtime.py): speech started / stopped, transcript deltas for a committed
item, the completed transcript and its item."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from server.protocols.realtime_replies import StartingTurn
from server.protocols.realtime_wire import user_item


class RealtimeTranscripts:
    """Mixed into RealtimeEvents, which sets these up."""

    _send: Callable[..., Awaitable[None]]
    _committed: Callable[[str], Awaitable[None]]
    partials: dict[str, str]  # item id -> the transcript sent so far
    committed: set[str]  # items the client was told of (their partials may go out)
    early: dict[str, str]  # the partial of the utterance in progress, before its commit
    before: dict[str, str | None]
    voice_starts_turns: bool
    pending: list[tuple[str, str]]
    awaiting: StartingTurn | None

    async def speech_started(self, item_id: str | None, t_ms: int) -> None:
        await self._send("input_audio_buffer.speech_started", audio_start_ms=t_ms, item_id=item_id)

    async def speech_stopped(self, item_id: str | None, t_ms: int) -> None:
        await self._send("input_audio_buffer.speech_stopped", audio_end_ms=t_ms, item_id=item_id)
        if item_id is not None:
            await self._committed(item_id)

    async def speech_cut(self, item_id: str, t_ms: int) -> None:
        """Only speech_stopped: a commit sends its own committed after it (as OpenAI
        does); a clear or a switch to push-to-talk commits nothing."""
        await self._send("input_audio_buffer.speech_stopped", audio_end_ms=t_ms, item_id=item_id)

    async def transcript_delta(self, item_id: str | None, text: str) -> None:
        """Our partials are whole stabilized texts; Realtime deltas are increments, for an
        item the client was told of (committed): earlier partials wait for that."""
        if item_id is None:
            return
        if item_id not in self.committed:
            self.early = {item_id: text}  # only the utterance in progress
            return
        before = self.partials.get(item_id, "")
        if not text.startswith(before) or text == before:
            return
        self.partials[item_id] = text
        await self._send(
            "conversation.item.input_audio_transcription.delta",
            item_id=item_id,
            content_index=0,
            delta=text[len(before) :],
        )

    async def flush_partial(self, item_id: str) -> None:
        """The item was committed: the partial heard so far goes out."""
        self.committed.add(item_id)
        text = self.early.pop(item_id, None)
        if text is not None:
            await self.transcript_delta(item_id, text)

    async def transcript_done(self, item_id: str, text: str, seconds: float = 0.0) -> None:
        self.partials.pop(item_id, None)
        self.committed.discard(item_id)
        await self._send(
            "conversation.item.input_audio_transcription.completed",
            item_id=item_id,
            content_index=0,
            transcript=text,
            usage={"type": "duration", "seconds": round(seconds, 3)},  # of audio transcribed
        )
        item = user_item(item_id, [{"type": "input_audio", "transcript": text}], "completed")
        previous = self.before.pop(item_id, None)
        await self._send("conversation.item.done", previous_item_id=previous, item=item)
        if text and not self.voice_starts_turns:
            self.pending.append((item_id, text))  # replied to on response.create
        elif text:  # stored now, as the turn's message: response.created names it
            self.awaiting = StartingTurn(item_id, text)
