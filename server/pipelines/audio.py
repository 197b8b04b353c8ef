"""Voice input for one session: mic PCM -> VAD -> live partial transcripts (partials.py)
-> final transcript -> a turn. VAD and STT run in worker threads; the event loop only moves
bytes.

Frames queue in a bounded buffer (audio must not be dropped silently, but it must not grow
without bound either: an overrun is reported with an `error` event)."""

from __future__ import annotations

import asyncio
import bisect
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from server.logging import get_logger
from server.pipelines.final_transcript import RATE, FinalTranscripts, Utterance
from server.pipelines.over_reply import OVER_REPLY_MIN_SILENCE_MS, OverReplyJudge
from server.pipelines.partials import LivePartials
from server.pipelines.pause_decode import SPECULATE_AFTER_MS, PauseDecode
from server.providers.stt import Transcript, WhisperSTT
from server.providers.vad import SileroVAD, VadEvent, VadStream
from server.turns.echo import EchoCanceller
from server.turns.endpoint import CAPS_MS, TurnConfig
from server.turns.gaze import Gaze
from server.turns.preemptive import words
from server.turns.semantic import SemanticTurns, words_completeness

if TYPE_CHECKING:
    from server.hub.session import Session

log = get_logger(__name__)

GAZE_MAX_AGE_S = 1.5
MIN_FRAME_BYTES = 2
MAX_FRAME_MS = 100


class VoiceInput:
    def __init__(self, session: Session, vad: SileroVAD, stt: WhisperSTT | None) -> None:
        s = session.settings
        self.session = session
        self.stt = stt
        self.stream: VadStream = vad.stream(
            threshold=s.vad_threshold,
            min_speech_ms=s.vad_min_speech_ms,
            min_silence_ms=s.vad_silence_ms,
            speech_pad_ms=s.vad_prefix_pad_ms,
            max_speech_ms=int(s.stt_max_segment_s * 1000),
        )
        self.frames: asyncio.Queue[bytes] = asyncio.Queue(maxsize=s.audio_queue_frames)
        self.push_to_talk = False
        self._ptt: list[bytes] = []
        self._ptt_bytes = 0
        self._items = 0
        self._item_id: str | None = None
        self._stopped: str | None = None  # an item whose speech_stopped went out early
        self._barged = False
        # the final decode, started in a pause
        self.pause_decode = PauseDecode(session, stt, self.stream)
        self.judge = OverReplyJudge(session)  # speech over a reply (BARGE_IN_MODE=words)
        self.finals = FinalTranscripts(session, stt, self.judge)
        self.partials = LivePartials(session, stt, self.stream, self.judge, lambda: self._item_id)
        self._overrun_reported = 0.0
        self.stream_ms = 0
        self.semantic: SemanticTurns | None = None
        self._vad_silence_ms = s.vad_silence_ms
        self._clock = (time.monotonic(), 0)  # (monotonic, stream ms) of the latest batch
        # the pause whose words started a reply early, and those words
        self._offered: tuple[int, str] | None = None
        self.received = 0  # mic samples received (the echo canceller's timeline)
        self._analysed = 0  # mic samples handed to the VAD
        self.echo: EchoCanceller | None = None  # made with the first reply audio (ECHO_CANCEL)
        # (mic samples received so far, monotonic) per frame: the gaze is read as it was when
        # the audio being analysed arrived, not as it is now (the analysis may lag behind)
        self._arrived: deque[tuple[int, float]] = deque(maxlen=s.audio_queue_frames)
        self._heard_at: float | None = None
        self._worker = session.spawn(self._run())

    # --- input --------------------------------------------------------------------------
    def check_frame(self, payload: bytes) -> str | None:
        """Why a mic frame is malformed, or None."""
        if len(payload) < MIN_FRAME_BYTES:
            return "Mic frame is empty."
        if len(payload) % 2:
            return "Mic frame has an odd number of bytes; expected PCM16 LE samples."
        if len(payload) > RATE * 2 * MAX_FRAME_MS // 1000:
            return f"Mic frame is longer than {MAX_FRAME_MS} ms of 16 kHz PCM16."
        return None

    def feed(self, payload: bytes) -> str | None:
        """Queue one frame; returns an error message when it had to be dropped."""
        try:
            self.frames.put_nowait(payload)
            self.received += len(payload) // 2
            self._arrived.append((self.received, time.monotonic()))
            return None
        except asyncio.QueueFull:
            now = time.monotonic()
            if now - self._overrun_reported > 1.0:
                self._overrun_reported = now
                return "Audio is arriving faster than it can be analysed; frames were dropped."
            return ""

    def set_turn_detection(self, cfg: dict[str, Any]) -> None:
        s = self.session.settings
        kind = cfg.get("type") or s.turn_detection
        self.push_to_talk = kind == "none"
        # the session's settings alone decide (a value it omits is the default, never the
        # one set before: that one is neither stored nor reported)
        self._vad_silence_ms = int(cfg.get("silence_ms") or s.vad_silence_ms)
        self.stream.min_silence_ms = self._vad_silence_ms
        self.semantic = None
        self.pause_decode.after_ms = SPECULATE_AFTER_MS
        if kind == "semantic":
            turn = TurnConfig(
                eagerness=cfg.get("eagerness") or s.turn_eagerness,
                complete_ms=s.turn_complete_silence_ms,
                gaze=s.turn_gaze if cfg.get("gaze") is None else bool(cfg["gaze"]),
                gaze_away_ms=s.turn_gaze_away_ms,
            )
            self.semantic = SemanticTurns(
                self.session.services.turn_model_now,
                turn,
                self._gaze,
                text_after_ms=s.turn_words_after_ms,
                log_pii=s.log_pii,
            )
            # the VAD's own silence rule only backs the cap up
            self.stream.min_silence_ms = max(CAPS_MS.values()) + 1000
            self.pause_decode.after_ms = s.turn_words_after_ms
        self.stream.threshold = float(cfg.get("threshold") or s.vad_threshold)
        self.stream.neg_threshold = max(self.stream.threshold - 0.15, 0.01)

    def _take_queued(self) -> list[bytes]:
        """The frames sent before a commit or clear that the worker has not taken yet, with
        the mic clock moved past them (as the worker would)."""
        taken = []
        while not self.frames.empty():
            data = self.frames.get_nowait()
            self.stream_ms += len(data) * 1000 // (RATE * 2)
            self._analysed += len(data) // 2
            taken.append(data)
        return taken

    async def commit(self) -> str | None:
        """End the user turn now (push-to-talk), whatever the VAD thinks. Returns the item
        id of the utterance, or None when there was no audio to commit."""
        held = np.zeros(0, dtype=np.float32)
        if self.push_to_talk:
            for data in self._take_queued():  # frames sent before the commit
                self._buffer_ptt(data)
            held = await asyncio.to_thread(self._pop_now)  # speech before PTT was switched on
        if self._ptt or held.size:
            ptt = np.frombuffer(b"".join(self._ptt), dtype="<i2").astype(np.float32) / 32768
            audio = np.concatenate((held, ptt))
            self._ptt, self._ptt_bytes = [], 0
        else:
            audio = await asyncio.to_thread(self._pop_now)
        await self.end_speech()
        if audio.size == 0:
            return None
        item = self._item_id or self._new_item()
        self._item_id = None
        end = self.stream_ms
        utt = Utterance(item, audio, end - len(audio) * 1000 // RATE, end, time.monotonic())
        self.session.spawn(self.finals.final(utt))
        return item

    async def clear(self) -> None:
        """Drop the audio not yet committed: frames sent before the clear that are still
        queued (else they would land in the next utterance), the push-to-talk buffer, speech
        in progress."""
        self._take_queued()
        await self.end_speech()
        self._ptt, self._ptt_bytes = [], 0
        if self.echo is not None:
            self.echo.drop_held()
        await asyncio.to_thread(self.stream.pop_utterance, force=True)
        self._item_id = None

    async def end_speech(self) -> None:
        """The speech in progress ends here, not by the turn detector (a commit, a clear, a
        switch to push-to-talk, the session ending): if it was announced, its speech_stopped
        goes out now, at the mic position reached. A client that lowered the reply's volume
        or shows "listening" at speech_started would otherwise wait for it forever."""
        item = self._item_id
        if item is None or item == self._stopped:
            return
        over = self.judge.over
        if over is not None and over.item_id == item and not over.confirmed:
            return  # held over a reply and never announced
        self._stopped = item
        await self.session.events.speech_cut(item, self.stream_ms)

    def _pop_now(self) -> np.ndarray:
        """The speech in progress, with the mic the echo canceller still holds."""
        if self.echo is not None:
            self.stream.feed(self.echo.take_held())
        return self.stream.pop_utterance(force=True)

    # --- the reply's own audio (echo canceller) -------------------------------------------
    def reply_audio_tap(self, number: int) -> Callable[[bytes, int], None] | None:
        """For SpeechOut: each PCM chunk of reply ``number`` as it is sent."""
        if not self.session.settings.echo_cancel or self.push_to_talk:
            return None
        if self.echo is None:
            self.echo = EchoCanceller()
        echo = self.echo
        return lambda pcm, rate: echo.add(number, pcm, rate, self.received)

    def playback_started(self, number: int) -> None:
        if self.echo is not None:
            self.echo.anchor(number, self.received)

    def reply_stopped(self, number: int) -> None:
        if self.echo is not None:
            self.echo.cut(number, self.received)

    def _gaze(self) -> Gaze | None:
        """Was the user looking at the screen when the audio being decided on arrived, had
        they just looked back (None: no recent face)?"""
        return self.session.face.gaze.at(time.monotonic(), GAZE_MAX_AGE_S, self._heard_at)

    def _arrival(self, sample: int) -> float | None:
        """When the mic frame holding ``sample`` arrived (None: too long ago)."""
        arrived = self._arrived
        i = bisect.bisect_left(arrived, sample + 1, key=lambda a: a[0])
        return arrived[i][1] if i < len(arrived) else None

    # --- worker -------------------------------------------------------------------------
    async def _run(self) -> None:
        while True:
            try:  # in a pause, decide even if the client stops sending audio
                first = await asyncio.wait_for(self.frames.get(), self._idle_timeout())
            except TimeoutError:  # no audio for a while: a client that stopped sending
                # (a gap shorter than the grace is a stall: its audio is still coming)
                gap_ms = (time.monotonic() - self._clock[0]) * 1000
                idle_ms = gap_ms - self.session.settings.turn_stall_grace_ms
                if idle_ms <= 0:
                    continue
                self._heard_at = None  # the gaze now
                try:
                    await self._semantic_step(idle_ms=idle_ms)
                except Exception:
                    log.exception("voice_step_failed")
                continue
            batch = [first]
            while not self.frames.empty():
                batch.append(self.frames.get_nowait())
            data = b"".join(batch)
            self.stream_ms += len(data) * 1000 // (RATE * 2)
            at, self._analysed = self._analysed, self._analysed + len(data) // 2
            if self.push_to_talk:
                self._buffer_ptt(data)
                continue
            if self._ptt:  # push-to-talk was switched off: the VAD hears its speech first
                at -= self._ptt_bytes // 2
                data = b"".join(self._ptt) + data
                self._ptt, self._ptt_bytes = [], 0
            try:
                events, done, spec = await asyncio.to_thread(self._analyse, data, at)
            except Exception:
                log.exception("vad_failed")
                continue
            if spec is not None:
                self._speculate(*spec)
            self._clock = (time.monotonic(), self.stream.t_ms)
            self._heard_at = self._arrival(at + len(data) // 2 - 1)
            try:
                await self._after_batch(events, done)
            except Exception:  # one bad step must not stop listening for the session
                log.exception("voice_step_failed")

    async def _after_batch(self, events: list[VadEvent], done: list[np.ndarray]) -> None:
        for ev in events:
            await self._on_vad(ev, done)
        await self._semantic_step()
        self.judge.phrase_end(self.stt, self.stream)
        await self.judge.judge_pause(self.pause_decode.current)
        if self.stream.in_speech:
            await self._while_speaking()

    def _idle_timeout(self) -> float | None:
        if self.semantic is None or self.stream.silence_start_ms is None:
            return None
        return 0.05

    async def _semantic_step(self, idle_ms: float = 0.0) -> None:
        """Semantic turns: does the pause in progress end the user's turn? (A mic stream
        that stopped counts its silence in wall-clock time.)"""
        if self.semantic is None or not self.stream.in_speech:
            return
        lang = self.session.stt_language()
        held = OVER_REPLY_MIN_SILENCE_MS if self.judge.judging else 0
        if self.judge.settled(self.stream, int(idle_ms)) or self.semantic.step(
            self.stream, self.pause_decode.current, lang, idle_ms=int(idle_ms), at_least_ms=held
        ):
            for ev in self.stream.end_now():
                await self._on_vad(ev, [self.stream.pop_utterance()])
            return
        pause = self.semantic.pause
        if pause is not None and pause.text:
            # the pause's words are known, the turn not over: the reply may start on them
            self._offer(pause.start_ms, pause.text)

    def _offer(self, pause_ms: int, text: str) -> None:
        """Start the reply early on a pause's words (once per pause and words)."""
        if self._offered != (pause_ms, words(text)):
            self._offered = (pause_ms, words(text))
            if not self.judge.judging:
                self.session.preemptive.offer(text)

    def _quick_words(self, pause_ms: int, t: Transcript) -> None:
        """A pause's greedy words, before its final ones: the reply may start on them while
        the final decode runs (``TURN_QUICK_WORDS``). Not when the pause is already over
        or the words clearly go on ("... and", a trailing comma): the turn waits there."""
        lang = self.session.stt_language()
        if (
            self.semantic is not None
            and self.stream.silence_start_ms == pause_ms
            and words_completeness(t, lang) != 0.0
        ):
            self._offer(pause_ms, t.text.strip())

    def _buffer_ptt(self, data: bytes) -> None:
        limit = int(self.session.settings.stt_max_segment_s * RATE * 2)
        if self._ptt_bytes + len(data) <= limit:
            self._ptt.append(data)
            self._ptt_bytes += len(data)

    def _analyse(
        self, data: bytes, at: int
    ) -> tuple[list[VadEvent], list[np.ndarray], tuple[int, np.ndarray] | None]:
        if self.echo is not None:
            data = self.echo.process(data, at)
        events = self.stream.feed(data)
        done = []
        while self.stream.pending_utterances:
            done.append(self.stream.pop_utterance())
        return events, done, self.pause_decode.due(self.stream)

    def _speculate(self, pause_ms: int, audio: np.ndarray) -> None:
        """Start the pause's final decode (``PauseDecode``). Held speech is decoded with the
        stretch before it, after its quick decode judged it. A partial still in flight is
        kept: cancelling it frees nothing (a local decode runs to its end in its thread, a
        remote one on its server), and its words still count if the user goes on. A remote
        server slower than the gaps between commas would otherwise never show a partial."""
        if not self.pause_decode.can_start(audio):
            return
        quick = None
        over = self.judge.over if self.judge.judging else None
        if over is not None:
            audio = over.joined(audio)
            self.judge.phrase_end(self.stt, self.stream)
            quick = self.judge.quick_at(pause_ms)
        quick_words = self._quick_words if self._quick_on() else None
        self.pause_decode.start(pause_ms, audio, after=quick, quick=quick_words)

    def _quick_on(self) -> bool:
        s = self.session
        return (
            self.semantic is not None
            and s.settings.turn_quick_words
            and not self.judge.judging
            and s.preemptive.enabled()
        )

    def _new_item(self) -> str:
        self._items += 1
        return f"item_{self._items}"

    async def _on_vad(self, ev: VadEvent, done: list[np.ndarray]) -> None:
        s = self.session
        if ev.kind == "start":
            self._item_id = self._new_item()
            self.partials.speech_started()
            self._barged = False
            if self.judge.hold(self._item_id, ev.t_ms):
                self.partials.due_now()
                return  # held until its words say it is an interruption
            await s.events.speech_started(self._item_id, ev.t_ms)
            return
        over = self.judge.release()
        if (over is None or over.confirmed) and self._item_id != self._stopped:
            await s.events.speech_stopped(self._item_id, ev.t_ms)
        audio = done.pop(0) if done else np.zeros(0, dtype=np.float32)
        if over is not None:  # held speech: decoded with the stretch before it
            audio = over.joined(audio)
            if not over.confirmed:
                self.judge.ended(over, audio, ev.t_ms)
        item = self._item_id or self._new_item()
        self._item_id = None
        self.partials.cancel()
        spec = self.pause_decode.take(ev.t_ms)
        if audio.size:
            now, t_ms = self._clock
            speech_end_at = now - (t_ms - ev.t_ms) / 1000
            utt = Utterance(item, audio, ev.onset_ms, ev.t_ms, time.monotonic(), speech_end_at)
            pause = self.semantic.pause if self.semantic is not None else None
            if pause is not None and pause.start_ms == ev.t_ms:
                utt.turn_cpu_ms = pause.audio_cpu_ms
            s.spawn(self.finals.final(utt, spec, over))

    async def _while_speaking(self) -> None:
        s = self.session
        if (
            not self._barged
            and s.settings.barge_in_mode == "duration"
            and self.stream.speech_ms >= s.settings.barge_in_min_ms
            and s.response_active()
            and s.barge_in_allowed()
        ):
            self._barged = True
            s.barge_in()
        self.partials.tick()
