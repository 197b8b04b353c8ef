"""Streaming voice activity detection with the Silero VAD v6 ONNX model faster-whisper ships.

Why our own loop instead of ``faster_whisper.vad.get_speech_timestamps``: that function needs
the whole recording, while the mic arrives in small frames and turn detection must decide
within tens of milliseconds. The model is fed exactly as faster-whisper feeds it (see
``SileroVADModel.__call__``): 512-sample windows at 16 kHz, each prefixed with the last 64
samples of the previous window (zeros for the first), with the LSTM state ``h``/``c`` carried
from window to window. Window-by-window results equal faster-whisper's batch results.

Sharing: one ``SileroVAD`` (one ONNX session, about 1 MB) serves every stream.
``InferenceSession.run`` is thread-safe and all per-stream state (context, h, c, buffers)
lives in ``VadStream``, so streams may run in different worker threads without a lock.
A ``VadStream`` itself is not thread-safe: feed it from one thread at a time.
"""

from __future__ import annotations

import importlib.util
import os
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from server.providers.onnx import OnnxUnavailable, cpu_session

SAMPLE_RATE = 16_000
WINDOW_SAMPLES = 512  # 32 ms: the only window size the 16 kHz model accepts
CONTEXT_SAMPLES = 64
WINDOW_MS = WINDOW_SAMPLES * 1000 // SAMPLE_RATE
_STATE_SHAPE = (1, 1, 128)
# Where speech ended (``end_by_energy``): Silero's probability stays above the threshold for
# about a window after the voice stops, and the hysteresis adds up to one more, so the first
# silent window begins ~44 ms after the real end (bench/vad_lag.py). Within the last
# END_LOOKBACK_MS before it, the end is placed after the last 8 ms block louder than
# END_LEVEL x the speech's loud windows (the 75th percentile of the last END_LEVEL_S).
END_LOOKBACK_MS = 3 * WINDOW_MS
END_BLOCK = 128  # 8 ms
END_LEVEL = 0.1  # -20 dB
END_LEVEL_S = 2


class VADUnavailable(RuntimeError):
    """The Silero model file or onnxruntime is missing."""


def faster_whisper_assets() -> Path | None:
    """The installed faster-whisper package's ``assets`` folder, found without importing the
    package: its ``__init__`` loads CTranslate2, tokenizers, PyAV and the Hugging Face hub
    (about 50 MB), which a server that never transcribes locally does not need."""
    spec = importlib.util.find_spec("faster_whisper")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "assets"


def silero_model_path() -> Path:
    """The ``silero_vad_v6.onnx`` inside the installed faster-whisper package."""
    assets = faster_whisper_assets()
    if assets is None:
        raise VADUnavailable("faster-whisper is not installed; it ships the VAD model")
    return assets / "silero_vad_v6.onnx"


class SileroVAD:
    """The shared model: one ONNX session, used by any number of ``VadStream``s."""

    def __init__(
        self, model_path: str | os.PathLike[str] | None = None, *, end_by_energy: bool = True
    ) -> None:
        self.end_by_energy = end_by_energy  # the streams' default (VAD_END_BY_ENERGY)
        path = Path(model_path) if model_path is not None else silero_model_path()
        if not path.is_file():
            raise VADUnavailable(
                f"Silero VAD model not found at {path}. Fix: run `desktopmate models download "
                "vad` or `desktopmate models import PATH`"
            )
        # One thread: a window is ~0.1 ms of work; thread hand-off would cost more, and
        # the cores are needed by Whisper.
        try:
            self._session = cpu_session(path)
        except OnnxUnavailable as exc:
            raise VADUnavailable(
                f"cannot load Silero VAD: {exc} (a damaged file or not an ONNX model). Fix: "
                "run `desktopmate models download vad` or reinstall faster-whisper"
            ) from exc
        self.path = path

    def window_prob(
        self, window_with_context: np.ndarray, h: np.ndarray, c: np.ndarray
    ) -> tuple[float, np.ndarray, np.ndarray]:
        """Speech probability for one (1, 576) float32 input; returns (prob, h, c)."""
        prob, h, c = self._session.run(None, {"input": window_with_context, "h": h, "c": c})
        return float(prob.reshape(-1)[0]), h, c

    def stream(self, **kwargs: float | int | None) -> VadStream:
        """A new per-session stream on this model (kwargs as for ``VadStream``)."""
        return VadStream(self, **kwargs)  # type: ignore[arg-type]


@dataclass(frozen=True)
class VadEvent:
    """Speech started or stopped.

    ``t_ms``: when it happened in stream time (onset of the first speech window, or the
    start of the silence that ended it). ``at_ms``: stream time when it was decided, so
    ``at_ms - t_ms`` is the detection delay (min_speech_ms / min_silence_ms plus a window).
    ``onset_ms``: onset of the speech this event belongs to (for "end": where it began, as
    ``speech_ms`` is already 0 once the end is reported).
    """

    kind: Literal["start", "end"]
    t_ms: int
    at_ms: int
    onset_ms: int = 0


def _to_float32(pcm: bytes | bytearray | memoryview | np.ndarray) -> np.ndarray:
    """Mic audio in any of the accepted forms -> 1-D float32 in [-1, 1]."""
    if isinstance(pcm, bytes | bytearray | memoryview):
        raw = bytes(pcm)
        if len(raw) % 2:
            raise ValueError("pcm16 bytes must have an even length")
        return np.frombuffer(raw, dtype="<i2").astype(np.float32) / 32768.0
    arr = np.asarray(pcm).reshape(-1)
    if arr.dtype == np.int16:
        return arr.astype(np.float32) / 32768.0
    if arr.dtype == np.float32:
        return arr
    if arr.dtype == np.float64:
        return arr.astype(np.float32)
    raise TypeError(f"unsupported audio dtype {arr.dtype}; use int16 or float32")


class VadStream:
    """Per-session turn detector: feed mic frames of any length, get start/end events.

    Start: the first window with prob >= ``threshold`` opens a candidate; it becomes speech
    once it has lasted ``min_speech_ms`` without a window below ``threshold - 0.15``.
    End: speech ends after ``min_silence_ms`` of windows below that lower threshold (a
    window >= ``threshold`` resets the count; in-between windows neither end nor reset).
    The utterance audio starts ``speech_pad_ms`` (rounded up to whole 32 ms windows) before
    the onset (Whisper misses clipped first syllables) and, once ended, stops
    ``speech_pad_ms`` after the speech. A blip just before (a candidate too short to be
    speech: "Stop" in a quick "Stop please.") whose tail is still in that pre-roll is taken
    in whole, or Whisper hears only "Please".
    ``max_speech_ms`` bounds an utterance (noise or a monologue would otherwise grow the
    buffer and the partial-transcription cost forever).
    With ``end_by_energy`` (None: the model's default), a pause starts where the voice's
    energy fell, not at the first silent window, which Silero and the hysteresis place
    ~44 ms late: the silence every turn decision waits for counts from the real end.
    It is set once, when the pause is first seen, and only ever moves earlier (at most
    ``END_LOOKBACK_MS``); with noise louder than the level, it stays where it was.
    """

    def __init__(
        self,
        vad: SileroVAD,
        threshold: float = 0.5,
        min_speech_ms: int = 250,
        min_silence_ms: int = 500,
        speech_pad_ms: int = 300,
        max_speech_ms: int | None = 30_000,
        end_by_energy: bool | None = None,
    ) -> None:
        if not 0.0 < threshold < 1.0:
            raise ValueError("threshold must be in (0, 1)")
        self.vad = vad
        self.threshold = threshold
        self.neg_threshold = max(threshold - 0.15, 0.01)
        self.min_speech_ms = min_speech_ms
        self.min_silence_ms = min_silence_ms
        self.speech_pad_ms = speech_pad_ms
        self.max_speech_ms = max_speech_ms
        self.end_by_energy = vad.end_by_energy if end_by_energy is None else end_by_energy
        self._pad_windows = -(-speech_pad_ms // WINDOW_MS)  # ceil
        self._done: deque[np.ndarray] = deque()
        self.reset()

    def reset(self) -> None:
        """Forget all audio and state (new turn after barge-in, resumed session)."""
        self._h = np.zeros(_STATE_SHAPE, dtype=np.float32)
        self._c = np.zeros(_STATE_SHAPE, dtype=np.float32)
        self._input = np.zeros((1, CONTEXT_SAMPLES + WINDOW_SAMPLES), dtype=np.float32)
        self._pending = np.zeros(0, dtype=np.float32)
        self._windows = 0  # windows processed: stream time = windows * 32 ms
        self._state: Literal["idle", "pending", "speech"] = "idle"
        self._pre: deque[np.ndarray] = deque(maxlen=self._pad_windows)
        self._utt: list[np.ndarray] = []
        self._utt_start_ms = 0
        self._onset_ms = 0
        self._silence_start_ms: int | None = None
        # the last blip: (its windows, the window count at its end, its onset)
        self._blip: tuple[list[np.ndarray], int, int] | None = None
        self._done.clear()
        self.last_prob = 0.0

    @property
    def t_ms(self) -> int:
        """Stream time of the audio analysed so far (whole windows only)."""
        return self._windows * WINDOW_MS

    @property
    def in_speech(self) -> bool:
        """True between a start event and its end event."""
        return self._state == "speech"

    @property
    def speech_ms(self) -> int:
        """Length of the current speech from its onset, 0 outside speech."""
        return self.t_ms - self._onset_ms if self._state == "speech" else 0

    @property
    def silence_start_ms(self) -> int | None:
        """While in speech: where the current run of silence began (None while talking).
        If the speech ends, its "end" event will carry exactly this t_ms."""
        return self._silence_start_ms if self._state == "speech" else None

    def utterance_until(self, end_ms: int) -> np.ndarray:
        """The current utterance as it would be if it ended at ``end_ms`` (with the same
        trailing pad as a real end): lets a caller start decoding before the end is sure."""
        if self._state != "speech" or not self._utt:
            return np.zeros(0, dtype=np.float32)
        keep = (end_ms + self.speech_pad_ms - self._utt_start_ms) * SAMPLE_RATE // 1000
        return np.concatenate(self._utt)[:keep]

    def feed(self, pcm: bytes | bytearray | memoryview | np.ndarray) -> list[VadEvent]:
        """Analyse a frame of 16 kHz mono audio (pcm16 bytes, int16 or float32 array)."""
        audio = _to_float32(pcm)
        if self._pending.size:
            audio = np.concatenate((self._pending, audio))
        events: list[VadEvent] = []
        full = audio.size - audio.size % WINDOW_SAMPLES
        for start in range(0, full, WINDOW_SAMPLES):
            self._step(audio[start : start + WINDOW_SAMPLES], events)
        self._pending = audio[full:].copy()
        return events

    def _step(self, window: np.ndarray, events: list[VadEvent]) -> None:
        buf = self._input
        buf[0, CONTEXT_SAMPLES:] = window
        prob, self._h, self._c = self.vad.window_prob(buf, self._h, self._c)
        buf[0, :CONTEXT_SAMPLES] = window[-CONTEXT_SAMPLES:]  # context for the next window
        self.last_prob = prob
        window = window.copy()  # the caller's array may be reused
        begin_ms = self.t_ms
        self._windows += 1
        now_ms = self.t_ms

        if self._state == "idle":
            if prob >= self.threshold:
                lead, onset = self._blip_lead()
                self._utt = [*lead, *self._pre, window]
                self._utt_start_ms = begin_ms - (len(lead) + len(self._pre)) * WINDOW_MS
                self._onset_ms = begin_ms if onset is None else onset
                self._state = "pending"
                self._confirm(now_ms, events)
            else:
                self._pre.append(window)
            return

        self._utt.append(window)
        if self._state == "pending":
            if prob < self.neg_threshold:  # a blip, not speech: keep its tail as pre-roll
                self._blip = (self._utt, self._windows, self._onset_ms)
                self._to_idle(keep_preroll=True)
            else:
                self._confirm(now_ms, events)
            return

        # speech
        if prob >= self.threshold:
            self._silence_start_ms = None
        elif prob < self.neg_threshold and self._silence_start_ms is None:
            self._silence_start_ms = self._energy_end(begin_ms) if self.end_by_energy else begin_ms
        if self._silence_start_ms is not None:
            if now_ms - self._silence_start_ms >= self.min_silence_ms:
                self._finish(self._silence_start_ms, now_ms, events)
                return
        if self.max_speech_ms is not None and now_ms - self._onset_ms >= self.max_speech_ms:
            # Cut mid-speech: no pre-roll for the next part, or its words would repeat.
            self._finish(now_ms, now_ms, events, keep_preroll=False)

    def _energy_end(self, begin_ms: int) -> int:
        """Where the voice's energy fell, within END_LOOKBACK_MS before ``begin_ms`` (the
        first silent window's start; the current window is the last in the utterance)."""
        lo = max(begin_ms - END_LOOKBACK_MS, self._onset_ms, self._utt_start_ms)
        n = (begin_ms - self._utt_start_ms) // WINDOW_MS  # windows before the silent one
        recent = self._utt[max(0, n - END_LEVEL_S * 1000 // WINDOW_MS) : n]
        if begin_ms <= lo or not recent:
            return begin_ms
        windows = np.stack(recent).astype(np.float64)
        level = END_LEVEL * np.percentile(np.sqrt((windows**2).mean(axis=1)), 75)
        back = (begin_ms - lo) * SAMPLE_RATE // 1000 // END_BLOCK  # blocks to look at
        tail = windows.reshape(-1)[-back * END_BLOCK :].reshape(back, END_BLOCK)
        loud = np.flatnonzero(np.sqrt((tail**2).mean(axis=1)) >= level)
        if loud.size == 0:
            return lo
        return min(begin_ms, lo + (int(loud[-1]) + 1) * END_BLOCK * 1000 // SAMPLE_RATE)

    def _blip_lead(self) -> tuple[list[np.ndarray], int | None]:
        """When the last blip's tail is still in the pre-roll (the gap since is shorter):
        its windows that fell out of it, and its onset (the speech begins there)."""
        blip, self._blip = self._blip, None
        if blip is None:
            return [], None
        windows, end, onset = blip
        still = self._pad_windows - (self._windows - 1 - end)  # its windows left in the pre-roll
        if still <= 0:
            return [], None
        return windows[: max(0, len(windows) - still)], onset

    def _confirm(self, now_ms: int, events: list[VadEvent]) -> None:
        if now_ms - self._onset_ms >= self.min_speech_ms:
            self._state = "speech"
            self._silence_start_ms = None
            events.append(VadEvent("start", self._onset_ms, now_ms, self._onset_ms))

    def _finish(
        self, end_ms: int, now_ms: int, events: list[VadEvent], *, keep_preroll: bool = True
    ) -> None:
        keep = (end_ms + self.speech_pad_ms - self._utt_start_ms) * SAMPLE_RATE // 1000
        self._done.append(np.concatenate(self._utt)[:keep])
        self._to_idle(keep_preroll=keep_preroll)
        events.append(VadEvent("end", end_ms, now_ms, self._onset_ms))

    def _to_idle(self, *, keep_preroll: bool) -> None:
        tail = self._utt[len(self._utt) - self._pad_windows :] if keep_preroll else []
        self._pre = deque(tail, maxlen=self._pad_windows)
        self._utt = []
        self._state = "idle"
        self._silence_start_ms = None

    def end_now(self) -> list[VadEvent]:
        """End the speech at the pause in progress (a turn detector decided the user is
        done before ``min_silence_ms``); the "end" event and utterance are as if the VAD had
        ended it there. Nothing happens outside a pause."""
        if self._state != "speech" or self._silence_start_ms is None:
            return []
        events: list[VadEvent] = []
        self._finish(self._silence_start_ms, self.t_ms, events)
        return events

    def current_utterance(self) -> np.ndarray:
        """Audio of the speech in progress (pre-roll + speech so far) for partial STT.

        Empty unless speech has started and not yet ended.
        """
        if self._state != "speech" or not self._utt:
            return np.zeros(0, dtype=np.float32)
        return np.concatenate(self._utt)

    def pop_utterance(self, *, force: bool = False) -> np.ndarray:
        """The oldest finished utterance (after an "end" event), removed from the stream.

        With ``force`` and no finished one, ends the speech in progress instead (a manual
        ``input_audio.commit``); no "end" event is emitted for it. Empty when there is none.
        """
        if self._done:
            return self._done.popleft()
        if force and self._state == "speech" and self._utt:
            audio = np.concatenate(self._utt)
            self._to_idle(keep_preroll=False)
            return audio
        return np.zeros(0, dtype=np.float32)

    @property
    def pending_utterances(self) -> int:
        """Finished utterances waiting for ``pop_utterance``."""
        return len(self._done)
