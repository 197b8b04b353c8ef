"""The final transcript of an utterance, and the turn it starts: decoded (or taken from
the pause's speculative decode), judged when it was held speech over a reply, announced once
``start_turn`` stored it, then handed to voice analysis once the reply is under way.

Finals are decoded one at a time per session, in the order the utterances ended."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from server.logging import get_logger
from server.pipelines.over_reply import OverReplyJudge
from server.pipelines.pause_decode import PauseDecode
from server.providers.stt import STTError, Transcript, WhisperSTT
from server.turns.interrupt import OverReply
from server.turns.latency import VoiceMarks

if TYPE_CHECKING:
    from server.hub.session import Session

log = get_logger(__name__)

RATE = 16_000


@dataclass
class Utterance:
    item_id: str
    audio: np.ndarray
    t_start_ms: int
    t_end_ms: int
    ended_at: float  # monotonic, when end of speech was decided
    speech_end_at: float | None = None  # monotonic, when the last speech audio arrived
    turn_cpu_ms: float | None = None  # the end-of-turn model's CPU time at the final pause


class FinalTranscripts:
    def __init__(self, session: Session, stt: WhisperSTT | None, judge: OverReplyJudge) -> None:
        self.session = session
        self.stt = stt
        self.judge = judge
        self._lock = asyncio.Lock()
        self._warned_stt = False

    async def final(
        self,
        utt: Utterance,
        spec: asyncio.Task[Transcript] | None = None,
        over: OverReply | None = None,
    ) -> None:
        """Decode ``utt`` (``spec``: its pause's decode, if one started; ``over``: held
        speech, judged by these words) and start its turn."""
        s = self.session
        if self.stt is not None and s.services.modules.get("stt") == "loading":
            try:  # the model is still loading at start-up: wait for it, don't drop the turn
                await self.stt.aload()
            except STTError:
                pass
        if self.stt is None or not self.stt.loaded:
            if not self._warned_stt:
                self._warned_stt = True
                await s.error(
                    "stt_unavailable", s.services.details.get("stt", "Speech-to-text is not ready.")
                )
            return
        async with self._lock:
            try:
                t = await PauseDecode.result(spec)
                if t is None:
                    t = await self.stt.atranscribe(utt.audio, s.stt_language())
            except STTError as e:
                await s.error("stt_failed", str(e))
                return
            text = t.text.strip()
            done_at = time.monotonic()  # the final transcript is known
            if over is not None and not over.confirmed:
                if not await self.judge.judge(over, text, t.avg_logprob):
                    await self.judge.ignored(over, utt.item_id, text)
                    return
                await s.events.speech_stopped(utt.item_id, utt.t_end_ms)

            async def announce() -> None:
                await s.events.transcript_done(utt.item_id, text, len(utt.audio) / RATE)

            log.info(
                "transcribed",
                item_id=utt.item_id,
                audio_ms=len(utt.audio) * 1000 // RATE,
                stt_ms=round(t.elapsed_s * 1000),
                stt_wait_ms=round(t.wait_s * 1000),  # queued behind another decode
                after_end_ms=round((time.monotonic() - utt.ended_at) * 1000),
            )
            # transcript.done once start_turn stored the utterance; a protocol that replies
            # on request (Realtime without create_response) stores it when it asks
            if text and not s.paused and s.events.voice_starts_turns:
                marks = VoiceMarks(
                    utt.speech_end_at or utt.ended_at, utt.ended_at, done_at, utt.turn_cpu_ms
                )
                await s.start_turn(text, source="voice", announce=announce, voice=marks)
            else:  # no turn (nothing said, paused, or not yet asked): nothing stored yet
                await s.preemptive.discard("no turn")
                await announce()
            if text:
                s.spawn(self._after_reply_started(utt, t))

    async def _after_reply_started(self, utt: Utterance, t: Transcript) -> None:
        """Voice analysis holds the GIL for tens of ms: start it once the reply's first audio
        went out (its first text for a reply without audio; a second at most), so it never
        delays the LLM request nor the first chunk's tokens and TTS."""
        s = self.session
        for _ in range(20):
            r = s.response
            if r is None or r.finished:
                break
            if r.speech is None and r.first_delta_at is not None:
                break
            if r.speech is not None and r.speech.first_audio_at is not None:
                break
            await asyncio.sleep(0.05)
        await s.on_utterance(utt, t)
