"""Text-to-speech providers behind one contract (see ``base``).

Importing this package is cheap: every provider imports its heavy library lazily.
"""

from .base import AudioChunk, AudioFormatName, TTSError, TTSProvider, Voice
from .edge import EdgeTTS, edge_voice_for
from .espeak import EspeakTTS, espeak_voice_for
from .fallback import FallbackTTS
from .fish import FishSpeechTTS

__all__ = [
    "AudioChunk",
    "AudioFormatName",
    "EdgeTTS",
    "EspeakTTS",
    "FallbackTTS",
    "FishSpeechTTS",
    "TTSError",
    "TTSProvider",
    "Voice",
    "edge_voice_for",
    "espeak_voice_for",
]
