"""Offline speech for tests: espeak-ng from the espeakng-loader wheel, driven through ctypes.

Only the handful of C calls needed for synchronous synthesis are bound. The library keeps
global state, so calls are serialised with a lock and the callback is re-installed each time.
"""

from __future__ import annotations

import ctypes
import threading
from dataclasses import dataclass

import espeakng_loader
import numpy as np

AUDIO_OUTPUT_SYNCHRONOUS = 2
INITIALIZE_DONT_EXIT = 0x8000
CHARS_UTF8 = 1
POS_CHARACTER = 1
EVENT_LIST_TERMINATED = 0
EVENT_WORD = 1
PARAM_RATE = 1
PARAM_PITCH = 3


class _Event(ctypes.Structure):
    _fields_ = (
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", ctypes.c_char * 8),
    )


_CALLBACK = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event)
)
_lock = threading.Lock()
_state: dict[str, object] = {}


@dataclass(frozen=True)
class Speech:
    """Synthesized speech plus espeak's own word start times (seconds)."""

    pcm: np.ndarray  # float32 mono in [-1, 1]
    rate: int
    word_starts: list[float]


def _lib() -> tuple[ctypes.CDLL, int]:
    if "lib" not in _state:
        lib = ctypes.CDLL(espeakng_loader.get_library_path())
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_SetSynthCallback.argtypes = [_CALLBACK]
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_Synth.argtypes = [
            ctypes.c_void_p,
            ctypes.c_size_t,
            ctypes.c_uint,
            ctypes.c_int,
            ctypes.c_uint,
            ctypes.c_uint,
            ctypes.c_void_p,
            ctypes.c_void_p,
        ]
        data = espeakng_loader.get_data_path().encode()
        rate = lib.espeak_Initialize(AUDIO_OUTPUT_SYNCHRONOUS, 0, data, INITIALIZE_DONT_EXIT)
        if rate <= 0:
            raise RuntimeError(f"espeak_Initialize failed ({rate})")
        _state["lib"], _state["rate"] = lib, rate
    return _state["lib"], _state["rate"]  # type: ignore[return-value]


def synthesize(text: str, voice: str = "en-us", *, wpm: int = 160, pitch: int = 50) -> Speech:
    """Speak `text` with espeak-ng and return float32 samples at its native rate."""
    with _lock:
        lib, rate = _lib()
        chunks: list[np.ndarray] = []
        starts: list[float] = []

        def on_audio(wav: ctypes._Pointer, n: int, events: ctypes._Pointer) -> int:
            if n > 0 and wav:
                chunks.append(np.ctypeslib.as_array(wav, shape=(n,)).copy())
            i = 0
            while events[i].type != EVENT_LIST_TERMINATED:
                if events[i].type == EVENT_WORD:
                    starts.append(events[i].audio_position / 1000.0)
                i += 1
            return 0

        callback = _CALLBACK(on_audio)
        _state["callback"] = callback  # keep alive while the library holds the pointer
        lib.espeak_SetSynthCallback(callback)
        if lib.espeak_SetVoiceByName(voice.encode()) != 0:
            raise RuntimeError(f"espeak-ng has no voice {voice!r}")
        lib.espeak_SetParameter(PARAM_RATE, wpm, 0)
        lib.espeak_SetParameter(PARAM_PITCH, pitch, 0)
        raw = text.encode() + b"\0"
        err = lib.espeak_Synth(raw, len(raw), 0, POS_CHARACTER, 0, CHARS_UTF8, None, None)
        if err != 0:
            raise RuntimeError(f"espeak_Synth failed ({err})")
        pcm = np.concatenate(chunks) if chunks else np.zeros(0, np.int16)
    return Speech(pcm.astype(np.float32) / 32768.0, rate, sorted(set(starts)))
