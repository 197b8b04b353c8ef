"""What the client has heard of a reply: its playback reports (response.audio.played),
whether it may still be audible, and a cut reply's stored text and history settling to
what was heard (barge-in, OpenAI Realtime's truncate)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from server.hub.active_response import ActiveResponse
from server.hub.core import SessionCore
from server.hub.protocol import ProtocolError


class Playback(SessionCore):
    """Mixed into Session (through Responses): the audible side of the current reply."""

    response: ActiveResponse | None = None
    perception: Any

    def reply_audible(self) -> bool:
        """The user may be hearing a reply: it is active, or (clients that never report
        playback until they cut it: Realtime, DMP) its audio presumably still plays, from
        its first chunk for its duration plus ``PLAYBACK_GRACE_MS``, unless truncated."""
        r = self.response
        if r is None or not r.finished:
            return r is not None
        start, speech = r.first_audio_at, r.speech
        if self.events.awaits_playback or speech is None or start is None or r.played.is_set():
            return False
        end = start + (speech.duration_ms + self.settings.playback_grace_ms) / 1000
        return time.monotonic() < end

    def audio_played(self, response_id: str, played_ms: int) -> None:
        """The client's response.audio.played: how much of a reply it played (barge-in
        truncation uses it), or, the first ``played_ms: 0`` of a reply still running, that
        playback starts: where, not how much was heard (a cancel still waits for the
        report of where playback stopped)."""
        r = self.response
        if r is None or r.id != response_id:
            return
        if r.speech is None or r.speech.first_audio_at is None:  # nothing played: a mistake
            raise ProtocolError(
                "invalid_event",
                f"{response_id} has no audio sent yet: report playback of audio received.",
            )
        if played_ms == 0 and r.played_at is None:  # playback starts (docs/protocol.md)
            r.played_at = time.monotonic()
            self.perception.reply_playing(r.number)
            if not r.finished:
                return
        self.played_to(r, played_ms)

    def played_to(self, r: ActiveResponse, played_ms: int) -> None:
        """The client played ``played_ms`` of the reply (a report, or a truncate)."""
        r.played_ms = played_ms
        r.played.set()
        if r.speech is not None and r.speech_task is not None and r.speech_task.done():
            if played_ms >= r.speech.duration_ms - 100:
                r.playback_done.set()

    def heard_text(self, r: ActiveResponse) -> str:
        """What the user got of a cancelled reply: the text of the audio they played, or
        all text sent when there was no audio or no playback report."""
        if r.speech is not None and r.speech.seq and r.played_ms is not None:
            return r.speech.heard_text(r.played_ms)
        return r.sent_text

    async def settle_heard_text(self, r: ActiveResponse) -> str:
        """After a cancel, give the client a moment to report how much it played."""
        reports = self.events.reports_playback
        if reports and r.speech is not None and r.speech.seq and r.played_ms is None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.settings.played_report_wait_ms / 1000):
                    await r.played.wait()
        return self.heard_text(r)

    async def _settle(self, r: ActiveResponse, heard: str) -> None:
        """The stored reply and the model's history keep only what the user heard."""
        await self.services.store.settle_message(self.user_id, r.reply_id, heard)
        if r.script is not None:  # the line alone, as much of it as was heard
            await self.services.agent.record_said(
                self.record.thread_id, heard, r.reply_id, interrupted=True
            )
            return
        await self.services.agent.record_interrupted(
            self.record.thread_id, r.user_text, heard, r.message_id, r.reply_id, r.tool_log
        )

    async def truncate_done(self, r: ActiveResponse, played_ms: int) -> None:
        """A client that plays replies itself (OpenAI Realtime) cut this reply at
        ``played_ms`` after its response.done: once its own writes landed, the stored
        reply and the history settle to what was heard, as for a barge-in."""
        self.played_to(r, played_ms)
        if r.task is not None:
            await asyncio.wait({r.task})
        heard = self.heard_text(r)
        if heard != r.sent_text:
            await self._settle(r, heard)
            # counted once, and not again for a reply cancelled while generated (it was then)
            cancelled = r.task is not None and r.task.cancelled()
            if not r.cut_after_done and not cancelled:
                r.cut_after_done = True
                await self.services.store.incr_usage(self.user_id, {"interrupted_replies": 1})
