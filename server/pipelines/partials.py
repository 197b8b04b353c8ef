"""Live partial transcripts of the speech in progress: decoded on an interval while the user
speaks, steadied so the text on screen does not flicker, and judged first when the speech
is held over a reply. It lives apart from ``VoiceInput`` (``pipelines/audio.py``), which
decides when speech starts and ends; this only says what it heard so far."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from server.pipelines.final_transcript import RATE
from server.pipelines.over_reply import (
    OVER_REPLY_MIN_AUDIO,
    OVER_REPLY_PARTIAL_MS,
    OVER_REPLY_WINDOW_S,
    OverReplyJudge,
)
from server.providers.stt import STTError, WhisperSTT

if TYPE_CHECKING:
    import numpy as np

    from server.hub.session import Session
    from server.providers.vad import VadStream


class PartialStabilizer:
    """Words that two consecutive partial hypotheses agree on are fixed; later partials
    keep them, so the text on screen does not flicker."""

    def __init__(self) -> None:
        self.fixed: list[str] = []
        self.prev: list[str] = []

    def update(self, text: str) -> str:
        words = text.split()
        agree = 0
        for a, b in zip(self.prev, words, strict=False):
            if a != b:
                break
            agree += 1
        if agree > len(self.fixed):
            self.fixed = words[:agree]
        self.prev = words
        tail = words[len(self.fixed) :] if words[: len(self.fixed)] == self.fixed else words[agree:]
        return " ".join(self.fixed + tail)


class LivePartials:
    """The partial transcripts of one session's mic stream (one decode in flight at most).
    ``current_item`` is the item id of the speech in progress: a partial of an earlier
    item is dropped."""

    def __init__(
        self,
        session: Session,
        stt: WhisperSTT | None,
        stream: VadStream,
        judge: OverReplyJudge,
        current_item: Callable[[], str | None],
    ) -> None:
        self.session = session
        self.stt = stt
        self.stream = stream
        self.judge = judge
        self._current_item = current_item
        self._stabilizer = PartialStabilizer()
        self._last_partial = 0.0
        self._partial_task: asyncio.Task[None] | None = None

    def speech_started(self) -> None:
        """New speech: its partials start from nothing, the first one an interval away."""
        self._stabilizer = PartialStabilizer()
        self._last_partial = time.monotonic()

    def due_now(self) -> None:
        """Held speech (over a reply): its first partial is due at once."""
        self._last_partial = 0.0

    def cancel(self) -> None:
        """The speech ended: its final transcript supersedes a partial in flight."""
        if self._partial_task:
            self._partial_task.cancel()

    def tick(self) -> None:
        """While the user speaks: start the next partial when one is due."""
        s = self.session
        now = time.monotonic()
        judging = self.judge.judging
        interval = (OVER_REPLY_PARTIAL_MS if judging else s.settings.stt_partial_interval_ms) / 1000
        if (
            self.stream.silence_start_ms is None  # in a pause the final decode has priority
            and self.stream.last_prob >= self.stream.threshold
            and self.stt is not None
            and self.stt.loaded
            and now - self._last_partial >= interval
            and (self._partial_task is None or self._partial_task.done())
        ):
            self._last_partial = now
            audio = self.stream.current_utterance()
            if audio.size >= (OVER_REPLY_MIN_AUDIO if judging else RATE // 2):
                over = self.judge.over
                if judging and over is not None:
                    audio = over.joined(audio)
                window = OVER_REPLY_WINDOW_S if judging else None
                item_id = self._current_item()
                self._partial_task = s.spawn(self._partial(item_id, audio, window))

    async def _partial(
        self, item_id: str | None, audio: np.ndarray, window_s: float | None = None
    ) -> None:
        assert self.stt is not None
        try:
            # a partial gives way to the pause's decode (window_s: judged over a reply)
            t = await self.stt.atry_transcribe(
                audio, self.session.stt_language(), window_s=window_s, give_way=window_s is None
            )
        except STTError:
            return
        if t is None or not t.text.strip() or item_id != self._current_item():
            return
        over = self.judge.over
        if over is not None and not await self.judge.judge(over, t.text, t.avg_logprob):
            return  # not (yet) an interruption: nothing of it reaches the client
        text = self._stabilizer.update(t.text.strip())
        await self.session.events.transcript_delta(item_id, text)
