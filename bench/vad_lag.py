"""How late the VAD places and learns the end of speech (issue 19): the user hears the reply
counted from the real end of their speech, the server counts from where ``VadStream`` puts
the pause's start (``silence_start_ms``), and every turn decision (the semantic model's
200 ms of silence, the pause decode) waits from there.

In process, on the server's own ``VadStream``: espeak-ng sentences (tests/speech.py) with
room noise, fed as the mic sends them (20 ms frames). Per sentence: the real end (just after
the last sample louder than 0.02, as bench/voice_turns.py's EOS), where the stream places
the pause's start and the stream time at which it first knows (the window that set it
ends), with the pause at the first silent window (``end_by_energy=False``, as before) and
where the voice's energy fell (the default, ``VAD_END_BY_ENERGY``). Also what the
hysteresis alone costs: the first window below ``threshold`` (not ``threshold - 0.15``)
after the speech's last window above it.

Usage: ``uv run python -m bench.vad_lag [--noise-dbfs -60]`` (a few seconds)."""

from __future__ import annotations

import argparse

import numpy as np

from bench.stats import p50_p95
from server.providers.vad import WINDOW_MS, SileroVAD
from tests.speech import pcm16_frames, speak, speech_offset_ms, with_silence

SENTENCES = [
    "Please turn on all the kitchen lights now.",
    "Could you remind me to call my sister about the trip on Friday?",
    "I spent the whole afternoon at the library reading about big ships.",
    "What is the weather going to be like tomorrow morning?",
    "My friend and I walked along the river this morning.",
    "Stop.",
    "Wait a second.",
    "I would like to book a table for two at",
    "My favourite kind of music is",
    "Tomorrow I have to go to the dentist and",
    "Can you play some music?",
    "That sounds great, thank you so much.",
    "How far is the moon?",
    "Tell me a story about a dragon.",
    "Set a timer for ten minutes.",
]
KOREAN = ["오늘 날씨가 정말 좋네요.", "내일 아침에 같이 산책하러 갈까요?"]
LEAD_MS, TAIL_MS = 400, 1500
WAITS = (96, 200)  # SEMANTIC_SPECULATE_AFTER_MS, TURN_COMPLETE_SILENCE_MS


def one(vad: SileroVAD, clip: np.ndarray, real_end: float, threshold: float, energy: bool) -> dict:
    """Feed one sentence as 20 ms frames; where the pause starts and when it is known."""
    stream = vad.stream(threshold=threshold, min_silence_ms=10_000, end_by_energy=energy)
    probs: list[float] = []
    placed = known = None
    due: dict[int, int] = {}  # silence wanted -> stream time it was reached
    for frame in pcm16_frames(clip):
        before = stream.t_ms
        stream.feed(frame)
        if stream.t_ms > before:
            probs.append(stream.last_prob)
        start = stream.silence_start_ms
        if start is None:
            placed = known = None  # speech (re)started: only the last pause counts
            due.clear()
            continue
        if placed is None:
            placed, known = start, stream.t_ms
        for wanted in WAITS:
            if wanted not in due and stream.t_ms - start >= wanted:
                due[wanted] = stream.t_ms
    # no hysteresis: the first window under the threshold after the last one above it
    above = [i for i, p in enumerate(probs) if p >= threshold]
    under = (above[-1] + 1) * WINDOW_MS if above else None
    return {"end": real_end, "placed": placed, "known": known, "under": under} | {
        f"due{w}": due.get(w) for w in WAITS
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--noise-dbfs", type=float, default=-60.0)
    ap.add_argument("--threshold", type=float, default=0.5)
    args = ap.parse_args(argv)
    noise = 10 ** (args.noise_dbfs / 20)
    vad = SileroVAD()
    rng = np.random.default_rng(0)
    rows: dict[bool, list[dict]] = {False: [], True: []}
    for text, voice in [(s, "en-us") for s in SENTENCES] + [(s, "ko") for s in KOREAN]:
        audio = speak(text, voice)
        clip = with_silence(audio, LEAD_MS, TAIL_MS)
        clip = clip + rng.normal(0, noise, clip.size).astype(np.float32)
        real_end = LEAD_MS + speech_offset_ms(audio)
        for energy in rows:
            rows[energy].append(one(vad, clip, real_end, args.threshold, energy))
    print(
        f"VAD end of speech: {len(SENTENCES)} English + {len(KOREAN)} Korean espeak-ng "
        f"sentences, noise {args.noise_dbfs:g} dBFS"
    )
    print(
        f"{'ms after the real end of speech, p50 / p95':<62} {'first window':>13} {'by energy':>12}"
    )
    cells = {e: [r for r in rows[e] if r["placed"] is not None] for e in rows}
    for label, key in (
        ("pause start as placed (silence_start_ms)", "placed"),
        ("... known in stream time (the window that set it ends)", "known"),
        ("the pause decode starts (96 ms of silence, semantic turns)", "due96"),
        ("a complete turn ends (TURN_COMPLETE_SILENCE_MS 200)", "due200"),
    ):
        a, b = (p50_p95([r[key] - r["end"] for r in cells[e]]) for e in (False, True))
        print(f"{label:<62} {a:>13} {b:>12}")
    under = [r["under"] - r["end"] for r in cells[False] if r["under"] is not None]
    print(f"{'first window under threshold (no hysteresis)':<62} {p50_p95(under):>13}")
    print("per sentence, placed (first window / by energy):")
    print(
        "  "
        + "  ".join(
            f"{a['placed'] - a['end']:.0f}/{b['placed'] - b['end']:.0f}"
            for a, b in zip(cells[False], cells[True], strict=False)
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
