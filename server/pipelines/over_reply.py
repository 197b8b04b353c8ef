"""Speech that starts while a reply is active (``BARGE_IN_MODE=words``): held, and judged by
its words (``server/turns/interrupt.py``) before anything of it reaches the client.

``VoiceInput`` asks this at the onset (hold it?), with each partial transcript, with the
quick decode at the first silent window after held speech (the end of a phrase), with the
transcript of each pause and with the final one. An interruption sends the held
``speech_started`` and cancels the reply; an acknowledgement becomes
``input_audio.backchannel``; the reply's echo and wordless sounds leave no trace.

Held utterances that follow each other within ``STRETCH_GAP_MS`` are one stretch: the VAD
splits "Wait, [pause] stop please." into two, and Whisper hears a lone "Wait," as "Wave". So
each decode of held speech includes the held speech just before it (at most
``STRETCH_MAX_S``), and "wait ... stop" is judged, and transcribed, as one.

Held speech is decoded oftener and shorter than other speech: partials every
``OVER_REPLY_PARTIAL_MS`` over a 4 s window, and a quick decode at the end of each phrase
(``phrase_end``), so a "stop" acts a decode after it was said."""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING

import numpy as np

from server.logging import get_logger, redact
from server.providers.stt import STTError, WhisperSTT
from server.turns.interrupt import OverReply
from server.turns.rules import acknowledgements_only

if TYPE_CHECKING:
    from server.hub.session import Session
    from server.providers.stt import Transcript
    from server.providers.vad import VadStream

log = get_logger(__name__)

DONE_WAIT_S = 5.0  # the cancelled reply's response.done goes out before the utterance's events
STRETCH_GAP_MS = 1000  # held speech this soon after the last is the same stretch
STRETCH_MAX_S = 4.0  # of earlier held speech decoded with the new (bounds the decode cost)
RATE = 16_000
STRETCH_JOIN = np.zeros(RATE // 5, dtype=np.float32)  # 200 ms of silence between the parts
OVER_REPLY_PARTIAL_MS = 250  # over a reply, partials this often: a "stop" must act fast
OVER_REPLY_MIN_AUDIO = RATE * 3 // 10
# held speech is a short phrase: encode a 4 s window, not 10 s (about half the decode time)
OVER_REPLY_WINDOW_S = 4.0
# held speech over a reply ends only after this much silence: its words are judged at every
# pause anyway, and "Wait, [comma] stop" must stay one utterance
OVER_REPLY_MIN_SILENCE_MS = 600


class OverReplyJudge:
    def __init__(self, session: Session) -> None:
        self.session = session
        self.over: OverReply | None = None  # the speech being judged, if any
        self._judged_pause: int | None = None
        # (end ms, audio, the judged speech) of the last held speech, while a stretch may go on
        self._stretch: tuple[int, np.ndarray, OverReply] | None = None
        # the quick decode at a pause's first silent window: (pause ms, judging task)
        self._quick: tuple[int, asyncio.Task[None]] | None = None

    def hold(self, item_id: str | None, t_ms: int) -> bool:
        """Speech starts: hold it when a reply is active and words decide interruptions."""
        s = self.session
        self.over = None
        if s.settings.barge_in_mode != "words" or not s.reply_audible():
            self._stretch = None
            return False
        self.over = OverReply(item_id, t_ms, s.stt_language())
        last, self._stretch = self._stretch, None
        if last is not None and 0 <= t_ms - last[0] <= STRETCH_GAP_MS:
            self.over.prefix = np.concatenate((last[1][-int(STRETCH_MAX_S * RATE) :], STRETCH_JOIN))
            self.over.prefix_text = last[2].text
        return True

    def ended(self, over: OverReply, audio: np.ndarray, t_ms: int) -> None:
        """Held speech ended at ``t_ms`` (stream time), not (yet) an interruption: speech
        starting soon after continues its stretch (``audio`` is the joined stretch)."""
        self._stretch = None if over.verdict == "echo" else (t_ms, audio, over)

    @property
    def judging(self) -> bool:
        """Held speech, not (yet) an interruption."""
        return self.over is not None and not self.over.confirmed

    def release(self) -> OverReply | None:
        """The utterance ended: its verdict goes with its final transcript."""
        over, self.over = self.over, None
        self._quick = None
        return over

    def phrase_end(self, stt: WhisperSTT | None, stream: VadStream) -> None:
        """Held speech: at the first silent window after it (where a phrase ends) decode the
        held audio at once (greedy, a short window) and judge it. A "stop" then acts a decode
        after it was said, not after the next partial or the pause's full decode."""
        over, pause = self.over, stream.silence_start_ms
        if over is None or over.confirmed or pause is None or stt is None or not stt.loaded:
            return
        if self._quick is not None and self._quick[0] == pause:
            return
        audio = over.joined(stream.utterance_until(pause))
        self._quick = (pause, self.session.spawn(self._judge_quick(stt, over, audio)))

    def quick_at(self, pause_ms: int) -> asyncio.Task[None] | None:
        """The quick decode of the pause at ``pause_ms``, if it started."""
        quick = self._quick
        return quick[1] if quick is not None and quick[0] == pause_ms else None

    async def _judge_quick(self, stt: WhisperSTT, over: OverReply, audio: np.ndarray) -> None:
        try:
            t = await stt.atranscribe(
                audio, self.session.stt_language(), partial=True, window_s=OVER_REPLY_WINDOW_S
            )
        except STTError:
            return
        if self.over is over:  # once it ended, its final transcript judges it
            await self.judge(over, t.text, t.avg_logprob)

    async def judge(self, over: OverReply, text: str, logprob: float | None = None) -> bool:
        """Judge words heard over the reply (``logprob``: Whisper's, see ``OverReply``); True
        once they are an interruption (the held speech_started is sent, the reply cancelled)."""
        if over.confirmed:
            return True
        s = self.session
        r = s.response
        verdict = over.judge(text, r.sent_text if r is not None else "", logprob)
        if not over.interrupts(verdict):
            return False
        over.confirmed = True
        self._stretch = None
        s.log.info(
            "interruption",
            verdict=verdict,
            item_id=over.item_id,
            text=redact(text, s.settings.log_pii),
        )
        await s.events.speech_started(over.item_id, over.t_ms)
        if not s.barge_in_allowed():  # barge_in false: its turn waits for the reply's end
            return True
        s.barge_in()
        if r is not None:  # its response.done comes before anything else of this utterance
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(DONE_WAIT_S):
                    await r.done_sent.wait()
        return True

    def settled(self, stream: VadStream, idle_ms: int = 0) -> bool:
        """Held speech whose words at this pause are acknowledgements, after
        ``OVER_REPLY_MIN_SILENCE_MS`` of silence: it ends here, whatever the end-of-turn model
        thinks of them ("Yeah." may sound unfinished). The user is not taking the turn; waiting
        up to the eagerness cap joined the next acknowledgement to it, and the next (each
        one ``input_audio.backchannel`` now)."""
        over, pause = self.over, stream.silence_start_ms
        return (
            over is not None
            and not over.confirmed
            and pause is not None
            and self._judged_pause == pause  # by the pause's own decode (not the quick one)
            and over.verdict == "backchannel"
            # known acknowledgements only: a lone misheard word may be a stop ("잠깐" heard
            # as "참가") that a later decode hears right, so that speech goes on being judged
            and acknowledgements_only(over.text, over.language)
            and stream.t_ms - pause + idle_ms >= OVER_REPLY_MIN_SILENCE_MS
        )

    async def judge_pause(self, spec: tuple[int, asyncio.Task[Transcript]] | None) -> None:
        """At a pause, the transcript decoded for it judges the held speech too."""
        over = self.over
        if over is None or over.confirmed or spec is None or not spec[1].done():
            return
        if spec[1].cancelled() or spec[1].exception() is not None:
            return
        if self._judged_pause != spec[0]:
            self._judged_pause = spec[0]
            t = spec[1].result()
            if not await self.judge(over, t.text, t.avg_logprob):
                over.settled_text = t.text

    async def ignored(self, over: OverReply, item_id: str, text: str) -> None:
        """Held speech that was no interruption: an acknowledgement is told as such; the
        reply's echo and wordless sounds leave no trace."""
        s = self.session
        s.log.info("speech_ignored", verdict=over.verdict, item_id=item_id)
        if over.verdict == "backchannel":
            await s.events.backchannel(item_id, text)
