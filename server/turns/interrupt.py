"""Speech over a playing reply: an interruption, or not?

With ``BARGE_IN_MODE=words`` (the default) speech that starts while a reply is active is
held: no ``input_audio.speech_started`` yet, no partial transcript sent, the reply goes on.
Its words decide, from each partial transcript, from the transcript at each pause and from
the final one:

- the companion's own words (most of them are words of the reply being spoken: its voice
  coming back through the speakers past the echo canceller) -> ignored, never a transcript;
- a stop phrase ("wait", "stop", "잠깐만") or a real new turn (two or more words that are not
  acknowledgements; see ``rules.classify``) -> the held ``speech_started`` goes out and the
  reply is cancelled;
- acknowledgements ("mm-hm", "yeah", "응", "그렇구나") -> ``input_audio.backchannel``, no
  cancel, no turn;
- no words at all (a cough, a knock: a false start) -> nothing; the reply was never paused.

``BARGE_IN_MODE=duration`` keeps the old rule: ``BARGE_IN_MIN_MS`` of speech cancels."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from server.turns.rules import MIN_TURN_WORDS, Kind, classify, echo_overlap, other_words, words

ECHO_OVERLAP = 0.6  # this share of the heard words are the reply's own: it is its echo
# Whisper's mean token log-probability below this: it was guessing (a hummed "mm-hm" heard as
# "Emma Cham", "Emend them."); real short phrases score about -0.3 to -0.85 (espeak, base)
GUESSED_LOGPROB = -1.0

Verdict = Kind | Literal["echo"]


@dataclass
class OverReply:
    item_id: str | None
    t_ms: int  # the onset, for the held input_audio.speech_started
    language: str | None
    confirmed: bool = False  # an interruption: the start went out, the reply was cancelled
    verdict: Verdict | None = None
    # the held speech just before this one ("Wait," before "stop please."): decoded with it
    prefix: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.float32))
    prefix_text: str = ""  # the words that speech was judged by
    text: str = ""  # the words this speech was last judged by
    # its words at its last pause, judged no interruption: later words are judged by what
    # they add ("mm-hm [pause] yeah [pause] uh-huh" is no turn however Whisper hears the hums)
    settled_text: str = ""

    def joined(self, audio: np.ndarray) -> np.ndarray:
        """``audio`` of this utterance with the stretch before it, for a decode."""
        return np.concatenate((self.prefix, audio)) if self.prefix.size else audio

    def judge(self, text: str, spoken: str, logprob: float | None = None) -> Verdict:
        """What these words are, given ``spoken``, the text of the reply being played, and
        Whisper's ``logprob`` for them: words it was guessing are no turn (a stop word
        still stops)."""
        if words(text) and echo_overlap(text, spoken) >= ECHO_OVERLAP:
            v: Verdict = "echo"
        else:
            v = classify(text, self.language)
            if v == "turn" and logprob is not None and logprob < GUESSED_LOGPROB:
                v = "backchannel"
            elif v == "turn" and self._new_words(text) < MIN_TURN_WORDS:
                v = "backchannel"  # "mm-hm ... mm-hm": each part alone is no turn
        self.verdict, self.text = v, text
        return v

    def _new_words(self, text: str) -> int:
        """Words that are no acknowledgement beyond those already judged no interruption: at
        this speech's last pause, or in the speech before it in its stretch (decoded
        together)."""
        before = self.settled_text or self.prefix_text
        return other_words(text, self.language) - (
            other_words(before, self.language) if before else 0
        )

    @staticmethod
    def interrupts(v: Verdict) -> bool:
        return v in ("stop", "turn")
