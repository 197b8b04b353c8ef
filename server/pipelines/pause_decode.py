"""The speculative final decode of a pause: a few VAD windows into a pause, decode the
utterance as if it ended there. Most pauses this long do end it, and the final transcript is
then ready sooner by the VAD's silence wait; semantic turns and the over-reply judge read the
same decode for the pause's words.

``VoiceInput`` (``server/pipelines/audio.py``) owns one; the decode is keyed by the pause's
start (stream ms): if the VAD then ends the speech at exactly that point, its result is the
final transcript.

Quick words (``TURN_QUICK_WORDS``, semantic turns, local Whisper): the decode is greedy
first, and those words go to ``quick`` at once (the preemptive start: the LLM's wait runs
while the final words are decoded), then the final beam decode of the same audio reuses the
greedy pass's encoder output (``WhisperSTT.transcribe_twice``). The final words still decide
the turn and are the stored transcript. When speech resumed during the greedy pass, the
final pass is skipped (that pause is over)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from server.providers.stt import STTError, Transcript, WhisperSTT
from server.providers.vad import VadStream

if TYPE_CHECKING:
    from server.hub.session import Session

SPECULATE_AFTER_MS = 128  # start the final decode this far into a pause (4 VAD windows)


class PauseDecode:
    def __init__(self, session: Session, stt: WhisperSTT | None, stream: VadStream) -> None:
        self.session = session
        self.stt = stt
        self.stream = stream
        self.after_ms = SPECULATE_AFTER_MS
        self.current: tuple[int, asyncio.Task[Transcript]] | None = None  # (pause ms, decode)

    def due(self, stream: VadStream) -> tuple[int, np.ndarray] | None:
        """(pause ms, audio up to it) when a pause in progress is long enough and not yet
        decoded. Runs in the VAD's worker thread, with the stream."""
        pause = stream.silence_start_ms
        if (
            pause is not None
            and stream.t_ms - pause >= self.after_ms
            and (self.current is None or self.current[0] != pause)
        ):
            return pause, stream.utterance_until(pause)
        return None

    def can_start(self, audio: np.ndarray) -> bool:
        """Whisper is loaded (or loading at start-up) and there is audio to decode."""
        stt = self.stt
        if stt is None or audio.size == 0:
            return False
        return stt.loaded or self.session.services.modules.get("stt") == "loading"

    def start(
        self,
        pause_ms: int,
        audio: np.ndarray,
        after: asyncio.Task[None] | None = None,
        quick: Callable[[int, Transcript], None] | None = None,
    ) -> None:
        """Decode ``audio`` for the pause at ``pause_ms`` (once ``after`` is done: the held
        speech's quick decode goes first). ``quick``: called on the event loop with the
        pause's greedy words before the final ones are decoded (local Whisper only)."""
        stt = self.stt
        assert stt is not None
        if after is not None or not isinstance(stt, WhisperSTT):
            quick = None

        async def decode() -> Transcript:
            if after is not None:
                await asyncio.wait([after])
            await stt.aload()  # at start-up the model may still be loading: wait for it
            lang = self.session.stt_language()
            if quick is None:
                return await stt.atranscribe(audio, lang)
            loop = asyncio.get_running_loop()

            def first(t: Transcript) -> bool:  # in the decode's thread
                loop.call_soon_threadsafe(quick, pause_ms, t)
                return not self._resumed(pause_ms)

            final = await stt.atranscribe_twice(audio, lang, first=first)
            if final is None:
                raise STTError("speech went on: this pause's final words are not needed")
            return final

        task = asyncio.ensure_future(decode())
        task.add_done_callback(lambda t: t.cancelled() or t.exception())
        self.current = (pause_ms, task)

    def _resumed(self, pause_ms: int) -> bool:
        """Speech went on after the pause (read from the decode's thread: a stale read
        only costs a decode, the final one then decodes afresh)."""
        stream = self.stream
        return stream.in_speech and stream.silence_start_ms != pause_ms

    def take(self, end_ms: int) -> asyncio.Task[Transcript] | None:
        """The speech ended at ``end_ms``: the decode of that pause, if one started (the
        decode of any other pause is forgotten)."""
        current, self.current = self.current, None
        return current[1] if current is not None and current[0] == end_ms else None

    @staticmethod
    async def result(task: asyncio.Task[Transcript] | None) -> Transcript | None:
        """The decode's transcript; None when there was none, it failed or it was
        cancelled (speech went on). The caller being cancelled (the session closed) is no
        None: it stops, else a closed session's utterance went on to a turn."""
        if task is None:
            return None
        try:
            return await task
        except STTError:
            return None
        except asyncio.CancelledError:
            me = asyncio.current_task()
            if me is not None and me.cancelling():
                raise
            return None
