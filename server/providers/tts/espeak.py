"""Offline TTS with espeak-ng, driven through ctypes from the ``espeakng-loader`` wheel.

Why: it is the fallback when edge-tts (online) or Fish Speech are unreachable, it needs no
model download, speaks Korean, and synthesizes about 700-1000x faster than real time.

libespeak-ng keeps global state (one voice, one callback, one parameter set) and is not
thread-safe, so every call goes through ``_LOCK``. Synthesis runs in a worker thread and
streams PCM to the event loop through the synth callback, which also lets a cancelled
consumer abort a long synthesis at the next callback.
"""

from __future__ import annotations

import asyncio
import ctypes
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from server.providers.tts.base import AudioChunk, TTSError, TTSProvider, Voice

DEFAULT_VOICE = "en-us"
DEFAULT_RATE_WPM = 175  # espeakRATE_NORMAL
MIN_RATE_WPM, MAX_RATE_WPM = 80, 450

# espeak_AUDIO_OUTPUT / options / flags / parameters from speak_lib.h.
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_DONT_EXIT = 0x8000  # otherwise espeak calls exit() when its data is missing
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_ENDPAUSE = 0x1000  # a short pause after the text: sentence-by-sentence TTS sounds natural
# A chunk cut mid-sentence (TTS_FIRST_CHUNK_WORDS: "Sentence number one is") gets no end
# pause: espeak's is ~300 ms, a gap in the middle of the sentence the listener hears
_CLAUSE_END = tuple(".!?,;:…。！？、")
_PARAM_RATE = 1
_PARAM_PITCH = 3
DEFAULT_PITCH = 50  # espeak's own default (0-100)
_EVENT_LIST_TERMINATED = 0
_EVENT_WORD = 1
_CALLBACK_BUFFER_MS = 100

_LOCK = threading.Lock()


class _Event(ctypes.Structure):
    """espeak_EVENT: the synth callback gets a list of these, ending with type 0."""

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


_SynthCallback = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event)
)


class _EspeakVoice(ctypes.Structure):
    _fields_ = (
        ("name", ctypes.c_char_p),
        ("languages", ctypes.c_void_p),  # (priority byte, NUL-terminated tag)*, then 0
        ("identifier", ctypes.c_char_p),
        ("gender", ctypes.c_ubyte),
        ("age", ctypes.c_ubyte),
        ("variant", ctypes.c_ubyte),
        ("xx1", ctypes.c_ubyte),
        ("score", ctypes.c_int),
        ("spare", ctypes.c_void_p),
    )


@dataclass(frozen=True)
class EspeakVoiceInfo:
    """One installed espeak voice; ``id`` is what ``espeak_SetVoiceByName`` accepts."""

    id: str
    name: str
    identifier: str
    languages: tuple[tuple[int, str], ...]  # (priority, lowercase tag); lower is preferred
    gender: str | None


class _Engine:
    """The loaded library and the sink the (global) synth callback writes into."""

    def __init__(self) -> None:
        try:
            import espeakng_loader

            lib = ctypes.CDLL(espeakng_loader.get_library_path())
            data_path = espeakng_loader.get_data_path()
        except (ImportError, OSError, RuntimeError) as exc:
            raise TTSError(f"espeak-ng is not available: {exc}") from exc
        lib.espeak_Initialize.argtypes = (ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int)
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_SetSynthCallback.argtypes = (_SynthCallback,)
        lib.espeak_SetSynthCallback.restype = None
        lib.espeak_SetVoiceByName.argtypes = (ctypes.c_char_p,)
        lib.espeak_SetVoiceByName.restype = ctypes.c_int
        lib.espeak_SetParameter.argtypes = (ctypes.c_int, ctypes.c_int, ctypes.c_int)
        lib.espeak_SetParameter.restype = ctypes.c_int
        lib.espeak_Synth.argtypes = (
            ctypes.c_void_p,
            ctypes.c_size_t,
            ctypes.c_uint,
            ctypes.c_int,
            ctypes.c_uint,
            ctypes.c_uint,
            ctypes.c_void_p,
            ctypes.c_void_p,
        )
        lib.espeak_Synth.restype = ctypes.c_int
        lib.espeak_ListVoices.argtypes = (ctypes.c_void_p,)
        lib.espeak_ListVoices.restype = ctypes.POINTER(ctypes.POINTER(_EspeakVoice))

        rate = lib.espeak_Initialize(
            _AUDIO_OUTPUT_SYNCHRONOUS,
            _CALLBACK_BUFFER_MS,
            str(Path(data_path)).encode(),
            _INITIALIZE_DONT_EXIT,
        )
        if rate <= 0:
            raise TTSError(f"espeak-ng failed to initialize (data at {data_path})")
        self.lib = lib
        self.sample_rate = rate
        self.sink: Callable[[bytes], bool] | None = None
        self.on_word: Callable[[int], None] | None = None  # audio position (ms) of each word
        self._callback = _SynthCallback(self._on_samples)  # keep a reference: C holds it
        lib.espeak_SetSynthCallback(self._callback)
        self.voices = self._list_voices()

    def _on_samples(self, wav: ctypes._Pointer, count: int, events: ctypes._Pointer) -> int:
        if self.on_word is not None and events:
            i = 0
            while events[i].type != _EVENT_LIST_TERMINATED:
                if events[i].type == _EVENT_WORD:
                    self.on_word(events[i].audio_position)
                i += 1
        if count <= 0 or self.sink is None:
            return 0
        # Returning 1 tells espeak to abort the rest of the text.
        return 0 if self.sink(ctypes.string_at(wav, count * 2)) else 1

    def _list_voices(self) -> dict[str, EspeakVoiceInfo]:
        found: dict[str, EspeakVoiceInfo] = {}
        array = self.lib.espeak_ListVoices(None)
        i = 0
        while array[i]:
            raw = array[i].contents
            i += 1
            identifier = (raw.identifier or b"").decode()
            if not identifier:
                continue
            langs: list[tuple[int, str]] = []
            addr = raw.languages
            while addr:
                priority = ctypes.c_ubyte.from_address(addr).value
                if priority == 0:
                    break
                tag = ctypes.string_at(addr + 1)
                langs.append((priority, tag.decode().lower()))
                addr += len(tag) + 2
            voice_id = identifier.rsplit("/", 1)[-1].lower()
            gender = {1: "male", 2: "female"}.get(raw.gender)
            info = EspeakVoiceInfo(voice_id, raw.name.decode(), identifier, tuple(langs), gender)
            found.setdefault(voice_id, info)
        return found


_engine: _Engine | None = None


def _get_engine() -> _Engine:
    """Load and initialize libespeak-ng once per process. Caller holds ``_LOCK``."""
    global _engine
    if _engine is None:
        _engine = _Engine()
    return _engine


def _engine_locked() -> _Engine:
    with _LOCK:
        return _get_engine()


@lru_cache(maxsize=1)
def _voice_index() -> dict[str, str]:
    """Lowercase voice id or language tag -> voice id, preferring each voice's best tag."""
    voices = _engine_locked().voices
    index: dict[str, tuple[int, str]] = {}
    for info in voices.values():
        for priority, tag in info.languages:
            if tag not in index or priority < index[tag][0]:
                index[tag] = (priority, info.id)
    result = {tag: voice_id for tag, (_, voice_id) in index.items()}
    result.update({voice_id: voice_id for voice_id in voices})  # exact ids win
    return result


def espeak_voice_for(voice_or_lang: str | None) -> str:
    """Map a persona voice (``ko-KR-SunHiNeural``), a language (``ko``, ``zh-CN``) or an
    espeak id (``en-gb-x-rp``) to an installed espeak voice id.

    Persona files name edge-tts voices; the offline fallback must still speak the same
    language, so the longest matching language prefix wins. Unknown -> ``DEFAULT_VOICE``.
    """
    if not voice_or_lang or not voice_or_lang.strip():
        return DEFAULT_VOICE
    index = _voice_index()
    parts = voice_or_lang.strip().lower().replace("_", "-").split("-")
    for end in range(len(parts), 0, -1):
        key = "-".join(parts[:end])
        if key in index:
            return index[key]
    return DEFAULT_VOICE


def _clamp_rate(rate_wpm: int | None) -> int:
    if rate_wpm is None:
        return DEFAULT_RATE_WPM
    return max(MIN_RATE_WPM, min(MAX_RATE_WPM, int(rate_wpm)))


def _synthesize_into(
    text: str,
    voice_id: str,
    rate_wpm: int | None,
    sink: Callable[[bytes], bool],
    *,
    pitch: int | None = None,
    on_word: Callable[[int], None] | None = None,
) -> int:
    """Run one blocking synthesis, pushing int16 PCM to ``sink``; returns the sample rate.

    ``sink`` returning False aborts synthesis (cancelled consumer). Every parameter is set
    on every call: the library's state is global, so nothing may leak between callers.
    """
    data = text.encode("utf-8")
    flags = _CHARS_UTF8 | (_ENDPAUSE if text.rstrip().endswith(_CLAUSE_END) else 0)
    with _LOCK:
        engine = _get_engine()
        if engine.lib.espeak_SetVoiceByName(voice_id.encode()) != 0:
            raise TTSError(f"espeak-ng has no voice {voice_id!r}")
        engine.lib.espeak_SetParameter(_PARAM_RATE, _clamp_rate(rate_wpm), 0)
        pitch = DEFAULT_PITCH if pitch is None else max(0, min(100, pitch))
        engine.lib.espeak_SetParameter(_PARAM_PITCH, pitch, 0)
        engine.sink, engine.on_word = sink, on_word
        try:
            status = engine.lib.espeak_Synth(
                data, len(data) + 1, 0, _POS_CHARACTER, 0, flags, None, None
            )
        finally:
            engine.sink = engine.on_word = None
        # EE_OK is 0; an abort requested by the sink is not an error.
        if status not in (0,):
            raise TTSError(f"espeak-ng synthesis failed (status {status})")
        return engine.sample_rate


def synthesize_pcm16(
    text: str,
    voice: str | None = DEFAULT_VOICE,
    rate_wpm: int | None = None,
    *,
    pitch: int | None = None,
    on_word: Callable[[int], None] | None = None,
) -> tuple[bytes, int]:
    """Synthesize ``text`` at once; returns (int16 little-endian mono PCM, sample rate).

    Blocking; for tests, benchmarks and non-streaming callers. ``voice`` goes through
    ``espeak_voice_for`` so persona voice names work too.
    """
    parts: list[bytes] = []

    def collect(pcm: bytes) -> bool:
        parts.append(pcm)
        return True

    rate = _synthesize_into(
        text, espeak_voice_for(voice), rate_wpm, collect, pitch=pitch, on_word=on_word
    )
    return b"".join(parts), rate


class EspeakTTS(TTSProvider):
    """Streaming espeak-ng provider: 16-bit PCM chunks of about ``chunk_ms`` each."""

    name = "espeak"
    # A 2-word first chunk is made in a few ms and the next chunk before it has played:
    # ~40 ms sooner first audio than 4 words at 20 ms per token, no stalls (first_chunk.py)
    first_chunk_words = 2

    def __init__(
        self,
        default_voice: str = DEFAULT_VOICE,
        rate_wpm: int | None = None,
        chunk_ms: int = 200,
    ) -> None:
        self.default_voice = default_voice
        self.rate_wpm = rate_wpm
        self.chunk_ms = chunk_ms

    @property
    def sample_rate(self) -> int:
        """Output rate of the library (22050 Hz for espeak-ng); blocking on first use."""
        return _engine_locked().sample_rate

    def _prepare(self, voice: str | None) -> tuple[str, int]:
        return espeak_voice_for(voice or self.default_voice), _engine_locked().sample_rate

    async def synthesize(
        self, text: str, voice: str | None = None, *, user_id: str | None = None
    ) -> AsyncIterator[AudioChunk]:
        """Yield pcm16 chunks while espeak is still producing the rest of ``text``."""
        if not text.strip():
            return
        # Off the loop: loading the library or waiting for another synthesis blocks.
        voice_id, rate = await asyncio.to_thread(self._prepare, voice)
        chunk_bytes = max(2, rate * self.chunk_ms // 1000 * 2)
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[bytes | BaseException | None] = asyncio.Queue()
        cancelled = threading.Event()

        def sink(pcm: bytes) -> bool:
            if cancelled.is_set():
                return False
            loop.call_soon_threadsafe(queue.put_nowait, pcm)
            return True

        def run() -> int | None:
            # Never raises: the outcome travels through the queue so an abandoned
            # worker cannot leave an unretrieved exception behind.
            try:
                rate = _synthesize_into(text, voice_id, self.rate_wpm, sink)
            except BaseException as exc:  # forwarded to the consumer
                loop.call_soon_threadsafe(queue.put_nowait, exc)
                return None
            loop.call_soon_threadsafe(queue.put_nowait, None)
            return rate

        worker = asyncio.ensure_future(asyncio.to_thread(run))
        pending = bytearray()
        try:
            while True:
                item = await queue.get()
                if isinstance(item, BaseException):
                    if isinstance(item, TTSError):
                        raise item
                    raise TTSError(f"espeak-ng synthesis failed: {item}") from item
                if item is None:
                    if pending:
                        yield AudioChunk(bytes(pending), "pcm16", rate)
                    return
                pending += item
                while len(pending) >= chunk_bytes:
                    yield AudioChunk(bytes(pending[:chunk_bytes]), "pcm16", rate)
                    del pending[:chunk_bytes]
        finally:
            cancelled.set()  # a consumer that stops early aborts espeak at its next callback
            if not worker.done():
                worker.add_done_callback(lambda _f: None)

    async def list_voices(self) -> list[Voice]:
        """Every installed espeak-ng voice, language = its preferred tag (``en-us``, ``ko``)."""
        engine = await asyncio.to_thread(_engine_locked)
        voices = []
        for info in sorted(engine.voices.values(), key=lambda v: v.id):
            best = min((p for p, _ in info.languages), default=None)
            language = next((t for p, t in info.languages if p == best), info.id)
            voices.append(Voice(info.id, info.name, language, self.name, info.gender))
        return voices
