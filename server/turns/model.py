"""The audio end-of-turn model: Pipecat's Smart Turn v3.2 (a Whisper-tiny encoder with a
classification head, 8.7 MB int8 ONNX), run with onnxruntime on one thread.

Why this model: it judges prosody (falling pitch, drawn-out syllables) rather than words, so
it works for any language Whisper knows, Korean included, in about 30 ms of CPU here. The
file comes from the ``pipecat-ai`` wheel; we only locate it (``find_spec`` does not import
pipecat, whose framework dependencies are not installed, see pyproject.toml). Features are
Whisper log-mels of the last 8 s (zero-padded at the front), waveform-normalised first, as
Pipecat's ``LocalSmartTurnAnalyzerV3`` computes them; faster-whisper's extractor gives the
same numbers (checked to 1e-5 in tests/turns/test_rules.py), and ``logmel.LogMel`` gives
faster-whisper's numbers with less work, to float32 rounding (bit for bit with OpenBLAS's
AVX-512 kernels; tests/turns/test_turn_model.py).

Where the CPU goes (bench/turn_model.py): the ONNX run is about 31 ms on one thread of this
machine whatever the audio, since the input is always 8 s; the features are 1-4 ms.
"""

from __future__ import annotations

import importlib.util
import os
import time
from pathlib import Path

import numpy as np

from server.providers.onnx import OnnxUnavailable, cpu_session
from server.turns.logmel import SAMPLE_RATE, LogMel

MODEL_FILE = "smart-turn-v3.2-cpu.onnx"


class TurnModelUnavailable(RuntimeError):
    """The model file or onnxruntime is missing."""


def smart_turn_model_path() -> Path:
    """The Smart Turn v3.2 ONNX file inside the installed pipecat-ai package."""
    spec = importlib.util.find_spec("pipecat")
    if spec is None or not spec.submodule_search_locations:
        raise TurnModelUnavailable("pipecat-ai is not installed; it ships the end-of-turn model")
    root = Path(next(iter(spec.submodule_search_locations)))
    return root / "audio" / "turn" / "smart_turn" / "data" / MODEL_FILE


class SmartTurnModel:
    """P(the user finished their turn) for the audio of an utterance up to a pause.

    One shared instance: ``InferenceSession.run`` is thread-safe and the feature extractor
    holds only constants, so sessions may score from different worker threads."""

    def __init__(self, model_path: str | os.PathLike[str] | None = None) -> None:
        path = Path(model_path) if model_path is not None else smart_turn_model_path()
        if not path.is_file():
            raise TurnModelUnavailable(f"end-of-turn model not found at {path}")
        try:
            self._features = LogMel()
        except ImportError as exc:
            raise TurnModelUnavailable(f"faster-whisper is not installed: {exc}") from exc
        try:  # one thread: the other core is transcribing at the same moment
            self._session = cpu_session(path, arena=True)
        except OnnxUnavailable as exc:
            raise TurnModelUnavailable(str(exc)) from exc
        self.path = path
        self.score(np.zeros(SAMPLE_RATE, dtype=np.float32))  # warm up: first run is 3x slower

    def features(self, audio: np.ndarray) -> np.ndarray:
        """(80, 800) Whisper log-mels of the last 8 s of 16 kHz float32 audio."""
        return self._features(audio)

    def score(self, audio: np.ndarray) -> float:
        """Probability in [0, 1] that the speech in ``audio`` is a complete turn (blocking)."""
        return self.score_features(self.features(audio))

    def score_features(self, feats: np.ndarray) -> float:
        """The model's probability for (80, 800) log-mel features."""
        out = self._session.run(None, {"input_features": feats[None]})[0]
        return float(np.asarray(out).reshape(-1)[0])

    def timed_score(self, audio: np.ndarray) -> tuple[float, float]:
        """(probability, CPU milliseconds of this thread spent on it)."""
        t = time.thread_time()
        p = self.score(audio)
        return p, (time.thread_time() - t) * 1000
