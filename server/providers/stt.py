"""Speech-to-text with faster-whisper (CTranslate2), in process. What a transcript is:
stt_types.py; opening the model, and its load failures in words: stt_load.py.

Why these choices:
- Audio arrives as float32 16 kHz numpy from our own VAD, never as files: PyAV 19 breaks
  faster-whisper's file decoding on Python 3.13, and we already hold the samples.
- ``vad_filter=False``: the caller's ``VadStream`` already cut the utterance.
- ``condition_on_previous_text=False``: each utterance stands alone; conditioning makes
  Whisper repeat earlier hallucinations.
- Partials (while the user speaks) decode greedily without timestamps at temperature 0 only;
  finals use beam search (beam 5, ``STT_FINAL_BEAM_SIZE``) with a short temperature
  fallback. Beam 2 is ~20% faster and keeps beam 5's words on clean espeak sentences
  (bench/stt_beam.py), but over a reply's echo and room noise it lost words the e2e tests
  check ("weather" heard as "way they're"; 2 of 6 runs against 0 of 6), so 5 stays the
  default; greedy loses words even on clean speech ("a table for two at" -> "a table for
  2.", a cut turn).
- One lock per model: on a few CPU cores two concurrent decodes only split the cores and
  both finish late; serialized, the oldest request finishes first and latency stays
  predictable. ``try_transcribe`` lets best-effort partials skip instead of queueing.
"""

from __future__ import annotations

import asyncio
import math
import os
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from server.providers.stt_encoder import EncoderHook, GaveWay
from server.providers.stt_load import open_whisper
from server.providers.stt_types import (
    SAMPLE_RATE,
    Segment,
    STTError,
    STTUnavailable,
    Transcript,
    Word,
    clean_text,
)

# The transcript types live in stt_types.py; importers of this module keep finding them here.
__all__ = [
    "SAMPLE_RATE",
    "STTError",
    "STTUnavailable",
    "Segment",
    "Transcript",
    "WhisperSTT",
    "Word",
]


def _as_float32(audio: np.ndarray) -> np.ndarray:
    arr = np.asarray(audio)
    if arr.ndim != 1:
        arr = arr.reshape(-1)
    if arr.dtype == np.int16:
        return arr.astype(np.float32) / 32768.0
    if arr.dtype != np.float32:
        return arr.astype(np.float32)
    return arr


class WhisperSTT:
    """A faster-whisper model: a name (downloaded on first use) or a local model directory."""

    def __init__(
        self,
        model: str | os.PathLike[str],
        device: str = "cpu",
        compute_type: str = "int8",
        cpu_threads: int = 0,
        download_root: Path | None = None,
        *,
        local_files_only: bool = False,
        partial_beam_size: int = 1,
        final_beam_size: int = 5,
        final_temperatures: tuple[float, ...] = (0.0, 0.2, 0.4),
        window_min_s: float | None = 5.0,
        partial_window_min_s: float | None = 5.0,
        max_tokens_per_s: float = 6.0,
        quick_final_logprob: float = 0.0,
    ) -> None:
        self.model = os.fspath(model)
        self.device = device
        self.compute_type = compute_type
        # 0 lets CTranslate2 pick 4 threads, which oversubscribes a 2-core machine.
        self.cpu_threads = cpu_threads or min(4, os.cpu_count() or 1)
        self.download_root = download_root
        self.local_files_only = local_files_only
        self.partial_beam_size = partial_beam_size
        self.final_beam_size = final_beam_size
        self.final_temperatures = final_temperatures
        # Whisper pads every input to a 30 s window, and the encoder's cost follows the window:
        # encoding only audio + 1 s (at least window_min_s) makes a short utterance's decode
        # 3-5x faster (5 s: encoder ~30 ms instead of ~100 ms at 10 s and ~1 s at 30 s). Finals
        # (beam search) keep their words at 5 s on 41 espeak sentences x 2 paddings (48 vs 49
        # of 82 exact); greedy partials lose a few (46 vs 48, "jumps over" -> "dumb, so"), but
        # a cheap partial matters more: one still running when the user stops delays the
        # pause's decode (one model lock; CTranslate2 cannot abort). The decoder may loop on
        # a short window; the token cap bounds any loop.
        self.window_min_s = window_min_s
        self.partial_window_min_s = partial_window_min_s or window_min_s
        self.max_tokens_per_s = max_tokens_per_s
        # transcribe_twice: greedy words this sure are the final words (0: never)
        self.quick_final_logprob = quick_final_logprob
        # the encoder window, the output transcribe_twice shares, partials giving way
        self._encoder = EncoderHook()
        self._model: Any = None
        self._languages: frozenset[str] = frozenset()
        self._load_lock = threading.Lock()
        self._lock = threading.Lock()

    @property
    def loaded(self) -> bool:
        return self._model is not None

    @property
    def busy(self) -> bool:
        """A transcription is running (``try_transcribe`` would return None)."""
        return self._lock.locked()

    def load(self) -> None:
        """Load the model (blocking; seconds, or minutes for a first download). Idempotent."""
        with self._load_lock:
            if self._model is not None:
                return
            model = open_whisper(
                self.model,
                self.device,
                self.compute_type,
                self.cpu_threads,
                self.download_root,
                self.local_files_only,
            )
            self._languages = frozenset(model.supported_languages)
            model.encode = self._encoder.wrap(model.encode)
            self._model = model

    def _language(self, language: str | None) -> str | None:
        """``ko-KR`` -> ``ko``; unknown codes fall back to detection instead of failing."""
        if not language:
            return None
        code = language.strip().lower().replace("_", "-").split("-")[0]
        return code if code in self._languages else None

    def transcribe(
        self,
        audio: np.ndarray,
        language: str | None = None,
        *,
        partial: bool = False,
        beam_size: int | None = None,
        initial_prompt: str | None = None,
        word_timestamps: bool = False,
        window_s: float | None = None,
    ) -> Transcript:
        """Transcribe float32 16 kHz mono audio (blocking; waits for the model lock).
        ``window_s``: encode at least this much instead of ``window_min_s`` (a short
        phrase judged over a reply: a 4 s window is twice as fast as 10 s)."""
        self.load()
        with self._held() as wait_s:
            return self._run(
                audio,
                language,
                partial,
                beam_size,
                initial_prompt,
                word_timestamps,
                wait_s,
                window_s,
            )

    def transcribe_twice(
        self,
        audio: np.ndarray,
        language: str | None = None,
        *,
        first: Callable[[Transcript], bool],
    ) -> Transcript | None:
        """A greedy decode, handed to ``first`` at once, then the final (beam) decode of
        the same audio and window, which reuses the greedy pass's encoder output: the
        greedy words can start work (a preemptive reply) while the final words, which
        count, are decoded. Both in one hold of the model lock: no partial in between.
        None when ``first`` returns False (the final words are no longer wanted). Greedy
        words surer than ``quick_final_logprob`` are returned as the final words."""
        self.load()
        with self._held() as wait_s:
            self._encoder.shared = {}
            try:
                quick = self._run(audio, language, True, 1, None, False, wait_s, self.window_min_s)
                if not first(quick):
                    return None
                if self._sure(quick):
                    return quick  # greedy was sure: the beam would give the same words
                return self._run(audio, language, False, None, None, False, wait_s)
            finally:
                self._encoder.shared = None

    @contextmanager
    def _held(self) -> Iterator[float]:
        """The model lock, waited for (a partial holding it gives way, see stt_encoder.py);
        yields the seconds waited."""
        waited = time.perf_counter()
        with self._encoder.waiting():
            self._lock.acquire()
        try:
            yield time.perf_counter() - waited
        finally:
            self._lock.release()

    def _sure(self, t: Transcript) -> bool:
        """Greedy words sure enough to be final: above ``quick_final_logprob`` and not a
        repetition loop (Whisper's own fallback tests: compression ratio over 2.4, log-prob
        under -1)."""
        lp, text = t.avg_logprob, t.text.strip().encode()
        if not text or lp is None or lp <= self.quick_final_logprob:
            return False
        return len(text) / len(zlib.compress(text)) <= 2.4

    def try_transcribe(
        self,
        audio: np.ndarray,
        language: str | None = None,
        *,
        partial: bool = True,
        beam_size: int | None = None,
        initial_prompt: str | None = None,
        window_s: float | None = None,
        give_way: bool = False,
    ) -> Transcript | None:
        """Like ``transcribe`` but returns None at once when the model is busy (partials).
        ``give_way``: also None when another decode starts waiting for the model before this
        one's token decoding began (``stt_encoder.GaveWay``)."""
        self.load()
        if not self._lock.acquire(blocking=False):
            return None
        self._encoder.gives_way = give_way
        try:
            return self._run(
                audio, language, partial, beam_size, initial_prompt, False, 0.0, window_s
            )
        except GaveWay:
            return None
        finally:
            self._encoder.gives_way = False
            self._lock.release()

    def _run(
        self,
        audio: np.ndarray,
        language: str | None,
        partial: bool,
        beam_size: int | None,
        initial_prompt: str | None,
        word_timestamps: bool,
        wait_s: float,
        window_s: float | None = None,
    ) -> Transcript:
        samples = _as_float32(audio)
        duration_s = samples.size / SAMPLE_RATE
        lang = self._language(language)
        if samples.size == 0:
            return Transcript("", lang or "", [], 0.0, 0.0, wait_s=wait_s)
        beams = beam_size or (self.partial_beam_size if partial else self.final_beam_size)
        windowed: dict[str, Any] = {}
        floor = window_s or (self.partial_window_min_s if partial else self.window_min_s)
        if floor and duration_s < 29:
            secs = max(floor, duration_s + 1.0)
            self._encoder.frames = min(3000, math.ceil(secs) * 100)  # 100 mel frames per second
            windowed["max_new_tokens"] = int(12 + self.max_tokens_per_s * duration_s)
        else:
            self._encoder.frames = None
        started = time.perf_counter()
        try:
            segments_iter, info = self._model.transcribe(
                samples,
                language=lang,
                beam_size=beams,
                temperature=0.0 if partial else list(self.final_temperatures),
                initial_prompt=initial_prompt,
                vad_filter=False,
                condition_on_previous_text=False,
                # short windows loop without timestamp tokens, so keep them when windowed
                without_timestamps=partial and not windowed,
                word_timestamps=word_timestamps and not partial,
                **windowed,
            )
            raw = list(segments_iter)  # the generator does the decoding: keep it in the lock
        except GaveWay:
            raise
        except Exception as exc:
            raise STTError(f"transcription failed: {exc}") from exc
        finally:
            self._encoder.frames = None
        elapsed_s = time.perf_counter() - started
        segments = [Segment(s.start, s.end, clean_text(s.text)) for s in raw]
        words = None
        if word_timestamps and not partial:
            words = [
                Word(w.start, w.end, w.word, w.probability) for s in raw for w in (s.words or [])
            ]
        return Transcript(
            text=" ".join(s.text for s in segments if s.text).strip(),
            language=info.language,
            segments=segments,
            duration_s=duration_s,
            elapsed_s=elapsed_s,
            words=words,
            language_probability=float(info.language_probability),
            avg_logprob=min((s.avg_logprob for s in raw), default=None),
            no_speech_prob=max((s.no_speech_prob for s in raw), default=None),
            wait_s=wait_s,
        )

    async def aload(self) -> None:
        """``load`` in a worker thread."""
        await asyncio.to_thread(self.load)

    async def atranscribe(
        self,
        audio: np.ndarray,
        language: str | None = None,
        *,
        partial: bool = False,
        beam_size: int | None = None,
        initial_prompt: str | None = None,
        word_timestamps: bool = False,
        window_s: float | None = None,
    ) -> Transcript:
        """``transcribe`` in a worker thread."""
        return await asyncio.to_thread(
            lambda: self.transcribe(
                audio,
                language,
                partial=partial,
                beam_size=beam_size,
                initial_prompt=initial_prompt,
                word_timestamps=word_timestamps,
                window_s=window_s,
            )
        )

    async def atranscribe_twice(
        self,
        audio: np.ndarray,
        language: str | None = None,
        *,
        first: Callable[[Transcript], bool],
    ) -> Transcript | None:
        """``transcribe_twice`` in a worker thread (``first`` is called in that thread)."""
        return await asyncio.to_thread(lambda: self.transcribe_twice(audio, language, first=first))

    async def atry_transcribe(
        self,
        audio: np.ndarray,
        language: str | None = None,
        *,
        partial: bool = True,
        beam_size: int | None = None,
        initial_prompt: str | None = None,
        window_s: float | None = None,
        give_way: bool = False,
    ) -> Transcript | None:
        """``try_transcribe`` in a worker thread."""
        return await asyncio.to_thread(
            lambda: self.try_transcribe(
                audio,
                language,
                partial=partial,
                beam_size=beam_size,
                initial_prompt=initial_prompt,
                window_s=window_s,
                give_way=give_way,
            )
        )
