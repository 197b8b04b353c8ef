"""Semantic end of turn: at each pause, how long to wait before the user's turn is over.

At a pause the end-of-turn model scores the audio (P(complete), prosody) and the speculative
transcript of the utterance so far scores the words (``rules.text_completeness``: "... and"
continues, "?" ends). Their weighted mean (words 2, audio 1) is the turn score. A complete
turn (score >= 0.5) ends after ``complete_ms`` of silence (200 ms); an incomplete one waits
longer the less complete it sounds, up to the eagerness cap (low / medium / high = 8 / 4 /
2 s; auto = medium, as in OpenAI Realtime's semantic VAD). Speech resuming before that
continues the same utterance.

The camera joins in (``gaze``, on by default; ``gaze.py`` keeps the timeline): a user who
is looking away from the screen at the pause is thinking, so the wait is at least
``gaze_away_ms`` (capped); a user who looked back at the screen after looking away, in the
last ``LOOK_BACK_MS`` of speech or during the pause, is handing the turn over, so it ends
at once (after ``complete_ms`` of silence), however unfinished the words sound and without
waiting for them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Eagerness = Literal["low", "medium", "high", "auto"]
CAPS_MS: dict[str, int] = {"low": 8000, "medium": 4000, "high": 2000, "auto": 4000}
THRESHOLD = 0.5
# The words outweigh the audio: when they are clear ("?" ends, "... and" continues) they
# decide, and the audio sets how long an unfinished turn waits; when they say nothing
# (no punctuation, a language without rules) the audio decides alone.
TEXT_WEIGHT, AUDIO_WEIGHT = 2.0, 1.0
# A look back at the screen this long before the pause began still hands the turn over:
# speakers look back during their last word, not after it. Longer, and a look back in the
# middle of a sentence hands over at its next comma (measured: bench/voice_gaze.py).
LOOK_BACK_MS = 500


@dataclass(frozen=True)
class TurnConfig:
    eagerness: Eagerness = "auto"
    complete_ms: int = 200
    gaze: bool = True
    gaze_away_ms: int = 1500

    @property
    def cap_ms(self) -> int:
        return CAPS_MS[self.eagerness]


@dataclass(frozen=True)
class Decision:
    complete: bool
    wait_ms: int  # the turn ends after this much silence (unless speech resumes)
    score: float
    audio_p: float | None
    text_p: float | None
    gaze_away: bool = False
    looked_back: bool = False


def decide(
    audio_p: float | None,
    text_p: float | None,
    cfg: TurnConfig,
    gaze_on_screen: bool | None = None,
    looked_back: bool = False,
) -> Decision:
    """The wait for one pause, from what the model and the words say (see module doc)."""
    weighted = [
        (p, w) for p, w in ((audio_p, AUDIO_WEIGHT), (text_p, TEXT_WEIGHT)) if p is not None
    ]
    total = sum(w for _, w in weighted)
    score = sum(p * w for p, w in weighted) / total if weighted else THRESHOLD
    cap = max(cfg.cap_ms, cfg.complete_ms)
    if score >= THRESHOLD:
        wait = cfg.complete_ms
    else:
        wait = round(cap - (cap - cfg.complete_ms) * score / THRESHOLD)
    away = bool(cfg.gaze and gaze_on_screen is False)
    back = bool(cfg.gaze and gaze_on_screen is True and looked_back)
    if away:
        wait = max(wait, min(cap, cfg.gaze_away_ms))
    elif back:
        wait = cfg.complete_ms
    return Decision(score >= THRESHOLD, wait, score, audio_p, text_p, away, back)


@dataclass
class Pause:
    """One pause inside an utterance (keyed by the stream time where the silence began)."""

    start_ms: int
    audio_p: float | None = None
    audio_cpu_ms: float | None = None
    text: str | None = None
    text_p: float | None = None
    decision: Decision | None = None
    decided_at_ms: int | None = None  # stream time of the decision
    looked_back: bool = False
    scored: bool = False
    modelled: bool = False  # the end-of-turn model is scoring this pause
    extra: dict[str, float] = field(default_factory=dict)

    def ready(self, silence_ms: int, text_wait_ms: int) -> bool:
        """Enough is known to decide: the model's score, and the words (or we waited)."""
        return self.audio_p is not None and (self.text is not None or silence_ms >= text_wait_ms)

    def decide(
        self, cfg: TurnConfig, gaze_on_screen: bool | None, now_ms: int, looked_back: bool = False
    ) -> Decision:
        self.decision = decide(self.audio_p, self.text_p, cfg, gaze_on_screen, looked_back)
        self.decided_at_ms = now_ms
        return self.decision

    def should_end(
        self,
        silence_ms: int,
        cfg: TurnConfig,
        gaze_on_screen: bool | None,
        looked_back: bool = False,
    ) -> bool:
        """The silence so far ends the turn (the cap ends it even before a decision, and so
        does a look back at the screen: the words and the model would not change it);
        ``looked_back``: the user looked back at the screen (see the module doc)."""
        if silence_ms >= max(cfg.cap_ms, cfg.complete_ms):
            return True
        d = self.decision
        if cfg.gaze and gaze_on_screen is True and (looked_back or (d is not None and d.gaze_away)):
            self.looked_back = True
            return silence_ms >= cfg.complete_ms
        return d is not None and silence_ms >= d.wait_ms
