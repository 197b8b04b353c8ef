"""Per-session semantic turn detection over a ``VadStream``: the VAD still finds speech and
pauses; this decides, pause by pause, whether the pause ends the turn (``endpoint.py``).

Called by ``VoiceInput`` after every batch of mic audio, on the event loop; the model runs in
a worker thread. The speculative transcript ``VoiceInput`` starts at each pause supplies the
words."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING

from server.logging import get_logger, redact
from server.turns.endpoint import LOOK_BACK_MS, Pause, TurnConfig
from server.turns.gaze import Gaze
from server.turns.rules import text_completeness

if TYPE_CHECKING:
    from server.providers.stt import Transcript
    from server.providers.vad import VadStream
    from server.turns.model import SmartTurnModel

log = get_logger(__name__)

SCORE_AFTER_MS = 64  # two silent VAD windows: a gap between words rarely lasts this long
TEXT_WAIT_MS = 1500  # decide on the audio alone when the transcript is this late
SPEC_SLACK_MS = 128  # the pause's decode starts within this of text_after_ms (mic batches)
# Whisper's mean token log-probability below this: it was guessing (a sentence's first half
# heard as "... to the next distant."), so its full stop says nothing about the turn
DOUBTFUL_LOGPROB = -0.8


class SemanticTurns:
    def __init__(
        self,
        model: Callable[[], SmartTurnModel | None],
        cfg: TurnConfig,
        gaze: Callable[[], Gaze | None],
        *,
        text_after_ms: int = SCORE_AFTER_MS,
        log_pii: bool = False,
    ) -> None:
        self.text_after_ms = text_after_ms  # when the words' decode starts at a pause
        self.log_pii = log_pii
        self._model = model  # read at each pause: it loads in the background at start-up
        self.cfg = cfg
        self.gaze = gaze
        self.pause: Pause | None = None
        self.decision_cpu_ms: list[float] = []
        self._task: asyncio.Task[None] | None = None

    def step(
        self,
        stream: VadStream,
        spec: tuple[int, asyncio.Task[Transcript]] | None,
        language: str | None,
        *,
        idle_ms: int = 0,
        at_least_ms: int = 0,
    ) -> bool:
        """Advance with the stream's state; True when the pause in progress ends the turn
        (never before ``at_least_ms`` of silence). A pause that speech interrupted is
        forgotten (the utterance goes on)."""
        start = stream.silence_start_ms
        if start is None:
            self.pause = None
            return False
        if self.pause is None or self.pause.start_ms != start:
            self.pause = Pause(start)
            self._model()  # loads it in the background on the first pause
        p = self.pause
        silence = stream.t_ms - start + idle_ms
        if p.text is None and spec is not None and spec[0] == start and spec[1].done():
            t = None if spec[1].cancelled() or spec[1].exception() else spec[1].result()
            p.text = t.text.strip() if t is not None else ""
            p.text_p = words_completeness(t, language)
        # words are coming when the speculative decode of this pause started (it does not
        # when Whisper is still loading or failed to load: then the audio decides alone)
        words_coming = p.text is None and spec is not None and spec[0] == start
        # the pause's decode starts text_after_ms into it: until shortly after, expect it
        expecting = words_coming or (
            p.text is None and silence < self.text_after_ms + SPEC_SLACK_MS
        )
        if not p.scored and silence >= SCORE_AFTER_MS:
            self._score_once(p, stream, start, expecting and silence < TEXT_WAIT_MS)
        g = self.gaze() if self.cfg.gaze else None
        gaze = None if g is None else g.on_screen
        # looked back at the screen in the pause's last words or during it
        back = g is not None and g.back_ms is not None and g.back_ms <= silence + LOOK_BACK_MS
        model_done = not p.modelled or p.audio_p is not None
        # words that come after a decision made without them decide again (a slow decode)
        late_words = p.decision is not None and p.decision.text_p is None and p.text_p is not None
        if late_words or (
            p.decision is None and p.scored and model_done and silence >= self.text_after_ms
        ):
            if late_words or not words_coming or silence >= TEXT_WAIT_MS:
                d = p.decide(self.cfg, gaze, stream.t_ms, back)
                log.info(
                    "turn_decision",
                    complete=d.complete,
                    wait_ms=d.wait_ms,
                    score=round(d.score, 3),
                    audio_p=None if d.audio_p is None else round(d.audio_p, 3),
                    text_p=d.text_p,
                    gaze_away=d.gaze_away,
                    looked_back=d.looked_back,
                    silence_ms=silence,
                    text=redact(p.text or "", self.log_pii),
                )
        if silence < at_least_ms or not p.should_end(silence, self.cfg, gaze, back):
            return False
        if p.looked_back and not (p.decision and p.decision.looked_back):
            log.info("turn_gaze_handover", silence_ms=silence)
        return True

    def _score_once(self, p: Pause, stream: VadStream, start: int, words_wait: bool) -> None:
        """Run the end-of-turn model once per pause, and only when it can change the
        decision: words that sound finished ("?", a full stop) end the turn whatever the
        audio says (they weigh double), so then the model is skipped. Waits for the words
        of the pause's speculative decode (at most ``TEXT_WAIT_MS``)."""
        if words_wait:
            return
        p.scored = True
        if p.text_p is not None and p.text_p >= 1.0:
            p.audio_cpu_ms = 0.0  # settled by the words: no model work at all
            return
        model = self._model()
        p.modelled = model is not None
        if model is not None:
            self._task = asyncio.create_task(self._score(model, p, stream.utterance_until(start)))

    async def _score(self, model: SmartTurnModel, p: Pause, audio: object) -> None:
        try:
            p.audio_p, p.audio_cpu_ms = await asyncio.to_thread(model.timed_score, audio)
        except Exception:  # a broken model must not stop turns: the words and cap decide
            log.exception("turn_model_failed")
            p.audio_p = 0.5
            return
        self.decision_cpu_ms.append(p.audio_cpu_ms)


def words_completeness(t: Transcript | None, language: str | None) -> float | None:
    """``rules.text_completeness`` of a pause's transcript; doubtful words (Whisper was
    guessing) count as unfinished: the audio then sets how long the turn waits."""
    if t is None:
        return None
    p = text_completeness(t.text.strip(), t.language or language)
    if p is not None and t.avg_logprob is not None and t.avg_logprob < DOUBTFUL_LOGPROB:
        return 0.0
    return p
