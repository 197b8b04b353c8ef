"""Voice analysis of each final user utterance: prosody (pitch, rate, loudness, pauses,
tone) and word choice -> an `analysis.voice` event and a stored timeline sample.

Why spawned and threaded: Praat pitch tracking costs 10-30 ms per utterance and the turn
must not wait for it, so each utterance is analysed in a worker thread in its own task
while the persona's reply starts. The same feature code serves POST /v1/voice/analyze.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from typing import Any

import numpy as np

from analysis.prosody import ProsodyResult, analyze_prosody
from analysis.wordchoice import WordChoice, analyze_words
from server.logging import get_logger
from server.pipelines.final_transcript import RATE, Utterance
from server.providers.stt import Transcript
from server.store.base import Sample

log = get_logger(__name__)

Emit = Callable[[dict[str, Any]], Awaitable[None]]
SaveSamples = Callable[[list[Sample]], Awaitable[None]]

_ROUND = {
    "pitch_hz": 1,
    "pitch_var": 2,
    "pitch_std_hz": 1,
    "rate_wps": 2,
    "syllables_per_s": 2,
    "volume_db": 1,
    "volume_consistency": 3,
    "pause_ratio": 3,
    "voiced_ratio": 3,
    "energy": 3,
    "warmth": 3,
    "duration_s": 2,
    "speech_s": 2,
}
WORD_COUNTS = ("words", "sentences", "positive", "negative", "empathetic", "polite")


def analyse_voice(
    audio: np.ndarray, transcript: Transcript, rate: int = RATE
) -> tuple[ProsodyResult, WordChoice]:
    """Blocking: run in a worker thread. Word timestamps, when the STT gave them, make the
    speaking rate exact."""
    stamps = [(w.start, w.end) for w in transcript.words] if transcript.words else None
    lang = transcript.language or None
    prosody = analyze_prosody(audio, rate, transcript.text, lang, stamps)
    return prosody, analyze_words(transcript.text, lang)


def prosody_dict(p: ProsodyResult) -> dict[str, Any]:
    """Every prosody field, rounded for JSON (None stays None: not measurable)."""
    d = asdict(p)
    for k, nd in _ROUND.items():
        if d.get(k) is not None:
            d[k] = round(d[k], nd)
    return d


def words_dict(w: WordChoice) -> dict[str, Any]:
    """Expression counts, sentiment and the matched expressions (so reports can show them)."""
    return {k: getattr(w, k) for k in WORD_COUNTS} | {
        "sentiment": round(w.sentiment, 3),
        "polite_sentence_ratio": round(w.polite_sentence_ratio, 3),
        "matches": w.matches,
    }


def voice_fields(p: ProsodyResult, w: WordChoice) -> dict[str, Any]:
    """The `analysis.voice` payload (without item_id), also the stored sample's data."""
    d = prosody_dict(p)
    keys = ("pitch_hz", "pitch_var", "rate_wps", "volume_db", "pause_ratio", "energy", "warmth")
    return {k: d[k] for k in keys} | {"words": words_dict(w)}


class VoiceAnalysis:
    """One session's voice analysis: one task per utterance, bounded by the utterances."""

    def __init__(
        self,
        *,
        emit: Emit,
        save_samples: SaveSamples,
        timeline_offset_ms: float = 0.0,
        logger: Any = log,
    ) -> None:
        self._emit = emit
        self._save = save_samples
        self._offset = timeline_offset_ms
        self.log = logger
        self._tasks: set[asyncio.Task[None]] = set()
        self.analysed = 0

    def submit(self, utt: Utterance, transcript: Transcript) -> None:
        """Analyse in the background; returns at once so the turn starts without waiting."""
        task = asyncio.create_task(self._run(utt, transcript), name=f"voice-{utt.item_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, utt: Utterance, transcript: Transcript) -> None:
        try:
            prosody, words = await asyncio.to_thread(analyse_voice, utt.audio, transcript)
        except Exception:
            self.log.exception("voice_analysis_failed", item_id=utt.item_id)
            return
        fields = voice_fields(prosody, words)
        self.analysed += 1
        await self._emit({"type": "analysis.voice", "item_id": utt.item_id} | fields)
        sample = Sample("voice", round(self._offset + utt.t_end_ms), fields)
        try:
            await self._save([sample])
        except Exception:
            self.log.exception("voice_sample_write_failed", item_id=utt.item_id)

    async def drain(self, timeout_s: float = 5.0) -> None:
        """Wait (bounded) for utterances still being analysed, e.g. before the report."""
        if not self._tasks:
            return
        _, pending = await asyncio.wait(list(self._tasks), timeout=timeout_s)
        for t in pending:
            t.cancel()
        if pending:
            self.log.warning("voice_analysis_abandoned", utterances=len(pending))
