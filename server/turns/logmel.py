"""Whisper log-mel features of an 8 s window, equal to faster-whisper's ``FeatureExtractor``
to float32 rounding (the plain path the end-of-turn model was checked against), but cheaper
for the common case of an utterance shorter than the window.

Why it is cheaper: the window is zero-padded at the front, and after normalisation every STFT
frame that sees only that padding is the same frame. Its log-mel column is computed once and
copied; only the frames that touch speech go through the FFT and the filter bank. The rest
(the float32 window, the filter bank, the same numpy calls in the same order) is what
faster-whisper does, so the output is equal bit for bit where OpenBLAS's kernel does not
round a thinner product differently (its AVX-512 kernels; its Haswell ones differ in the last
bit, as they do between 1 and 2 BLAS threads), and the scores with it
(tests/turns/test_turn_model.py).
"""

from __future__ import annotations

import threading

import numpy as np

SAMPLE_RATE = 16_000
WINDOW_SAMPLES = 8 * SAMPLE_RATE
N_FFT = 400
HOP = 160
N_MELS = 80
FRAMES = WINDOW_SAMPLES // HOP  # 800: faster-whisper drops the 801st (centred) frame
_HALF = N_FFT // 2
# OpenBLAS multiplies very thin matrices with other kernels (last bits differ): below this many
# frames the bit-for-bit equality with the plain path was lost (9 frames), at 16 it held
MIN_COLUMNS = 64


def mel_filters() -> np.ndarray:
    """(80, 201) float32 Slaney mel filter bank, faster-whisper's own."""
    from faster_whisper.feature_extractor import FeatureExtractor

    return FeatureExtractor.get_mel_filters(SAMPLE_RATE, N_FFT, n_mels=N_MELS).astype("float32")


def normalised_window(audio: np.ndarray) -> tuple[np.ndarray, int]:
    """The last 8 s of ``audio``, zero-padded at the front and normalised to zero mean and
    unit variance (as Pipecat's Smart Turn does), and how many leading samples are padding."""
    x = np.asarray(audio, dtype=np.float32).reshape(-1)[-WINDOW_SAMPLES:]
    pad = WINDOW_SAMPLES - x.size
    x = np.pad(x, (pad, 0))
    return (x - x.mean()) / np.sqrt(x.var() + 1e-7), pad


def padding_frames(pad: int) -> int:
    """How many leading STFT frames see nothing but the constant padding (frame k covers
    samples [160k - 200, 160k + 200), reflect-padded at the start)."""
    if pad <= _HALF:
        return 0
    return (pad - _HALF) // HOP + 1


class LogMel:
    """(80, 800) float32 log-mel features of the last 8 s of 16 kHz audio."""

    def __init__(self) -> None:
        from threadpoolctl import ThreadpoolController

        self.filters = mel_filters()
        self.window = np.hanning(N_FFT + 1)[:-1].astype("float32")
        self._blas = ThreadpoolController()
        # the limit is process-wide: two sessions' decisions overlapping would restore the
        # thread counts out of order and leave BLAS at one thread for everybody
        self._blas_lock = threading.Lock()

    def __call__(self, audio: np.ndarray) -> np.ndarray:
        x, pad = normalised_window(audio)
        # the one padding frame that stands for all of them; at least MIN_COLUMNS frames go
        # through the filter bank so the matrix product takes BLAS's ordinary path
        first = min(max(padding_frames(pad) - 1, 0), FRAMES - MIN_COLUMNS)
        padded = np.pad(x, (_HALF, _HALF), mode="reflect")
        step = padded.strides[0]
        frames = np.lib.stride_tricks.as_strided(
            padded[first * HOP :], (FRAMES - first, N_FFT), (HOP * step, step), writeable=False
        )
        spectrum = np.fft.rfft(frames * self.window, n=N_FFT, axis=-1).astype(np.complex64)
        # one BLAS thread: OpenBLAS would hand half the product to a helper thread that then
        # spins, doubling the CPU (and hiding it from the caller's thread_time); the other
        # core is transcribing. The split is by rows/columns, so the bits are the same.
        with self._blas_lock, self._blas.limit(limits=1, user_api="blas"):
            mel = self.filters @ (np.abs(spectrum) ** 2).T
        log_spec = np.empty((N_MELS, FRAMES), dtype=np.float32)
        log_spec[:, first:] = np.log10(np.clip(mel, a_min=1e-10, a_max=None))
        log_spec[:, :first] = log_spec[:, first : first + 1]
        log_spec = np.maximum(log_spec, log_spec.max() - 8.0)
        return ((log_spec + 4.0) / 4.0).astype(np.float32)
