"""The latency the user hears, per voice turn: from the end of their speech to each step
of the reply, up to its first audio actually playing (the client's ``played_ms: 0``).

All marks are ``time.monotonic()`` on the server. "End of speech" is placed on the audio
clock: when the mic audio at the start of the final pause arrived (the VAD's stream time
mapped to wall time), so the VAD's own detection delay counts too."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

# response.done.timings keys, in the order the steps happen (docs/protocol.md)
STEPS = (
    "eos_to_turn_ms",  # end-of-turn decision
    "eos_to_transcript_ms",  # final transcript
    "eos_to_llm_ms",  # LLM request
    "eos_to_first_token_ms",
    "eos_to_first_audio_ms",  # first reply audio sent
    "eos_to_played_ms",  # first reply audio played by the client
)


@dataclass(frozen=True)
class VoiceMarks:
    speech_end: float
    turn: float
    transcript: float
    turn_cpu_ms: float | None = None


def voice_timings(
    m: VoiceMarks,
    llm: float | None,
    first_token: float | None,
    first_audio: float | None,
    played: float | None,
) -> dict[str, int | None]:
    """The steps of one voice turn in ms after the end of speech (None: did not happen)."""
    marks = (m.turn, m.transcript, llm, first_token, first_audio, played)
    out: dict[str, int | None] = {
        k: None if t is None else round((t - m.speech_end) * 1000)
        for k, t in zip(STEPS, marks, strict=True)
    }
    out["turn_cpu_ms"] = None if m.turn_cpu_ms is None else round(m.turn_cpu_ms, 1)
    return out


def voice_usage(timings: Mapping[str, int | None]) -> dict[str, int]:
    """Usage counters of one reply (for the dashboard: sums, so means can be derived)."""
    if timings.get("eos_to_transcript_ms") is None:
        return {}
    out = {"voice_turns": 1}
    for key in ("eos_to_first_audio_ms", "eos_to_played_ms"):
        v = timings.get(key)
        if v is not None:
            out[f"voice_{key.removesuffix('_ms')}_ms_total"] = v
            out[f"voice_{key.removesuffix('_ms')}_n"] = 1
    return out
