"""espeak-ng provider against the real library shipped by espeakng-loader."""

from __future__ import annotations

import asyncio
import threading

import numpy as np
import pytest

from server.providers.tts.base import AudioChunk, TTSError
from server.providers.tts.espeak import (
    DEFAULT_VOICE,
    EspeakTTS,
    _synthesize_into,
    espeak_voice_for,
    synthesize_pcm16,
)

ENGLISH = "The quick brown fox jumps over the lazy dog."
KOREAN = "안녕하세요. 오늘 날씨가 정말 좋네요."


def _samples(pcm: bytes) -> np.ndarray:
    return np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x))))


def _same_speech(a: bytes, b: bytes) -> bool:
    """Same text and voice: espeak jitters pitch randomly, so lengths differ by a few ms."""
    return (
        abs(len(a) - len(b)) < 0.02 * len(b) and 0.8 < _rms(_samples(a)) / _rms(_samples(b)) < 1.25
    )


def test_english_sync_helper_is_loud_speech() -> None:
    pcm, rate = synthesize_pcm16(ENGLISH, "en-us")
    audio = _samples(pcm)
    assert rate == 22050
    assert 1.5 < audio.size / rate < 6.0  # nine words at 175 wpm
    assert _rms(audio) > 0.03
    assert np.abs(audio).max() > 0.2


def _trailing_silence_ms(pcm: bytes, rate: int) -> float:
    audio = _samples(pcm)
    loud = np.nonzero(np.abs(audio) > 0.01)[0]
    return (audio.size - loud[-1]) * 1000 / rate


def test_a_chunk_cut_mid_sentence_has_no_end_pause() -> None:
    """TTS_FIRST_CHUNK_WORDS cuts "Sentence number one is" off its sentence: no ~300 ms
    pause after it (the listener would hear a gap mid-sentence); a sentence keeps its own."""
    cut, rate = synthesize_pcm16("Sentence number one is", "en-us")
    sentence, _ = synthesize_pcm16("Sentence number one is here.", "en-us")
    clause, _ = synthesize_pcm16("Sentence number one,", "en-us")
    assert _trailing_silence_ms(cut, rate) < 50
    assert _trailing_silence_ms(sentence, rate) > 200
    assert _trailing_silence_ms(clause, rate) > 100


async def test_korean_streams_200ms_pcm16_chunks() -> None:
    tts = EspeakTTS(chunk_ms=200)
    chunks = [c async for c in tts.synthesize(KOREAN, "ko-KR-SunHiNeural")]
    assert all(isinstance(c, AudioChunk) for c in chunks)
    assert {(c.format, c.sample_rate) for c in chunks} == {("pcm16", 22050)}
    chunk_bytes = 22050 * 200 // 1000 * 2
    assert all(len(c.data) == chunk_bytes for c in chunks[:-1])
    assert 0 < len(chunks[-1].data) <= chunk_bytes
    audio = _samples(b"".join(c.data for c in chunks))
    assert audio.size / 22050 > 1.0
    assert _rms(audio) > 0.03
    # Streaming delivers what the one-shot helper produces (espeak adds random jitter, so
    # compare length, not bytes).
    pcm, _ = synthesize_pcm16(KOREAN, "ko")
    assert _same_speech(b"".join(c.data for c in chunks), pcm)


async def test_blank_text_yields_nothing() -> None:
    assert [c async for c in EspeakTTS().synthesize("  \n")] == []


def test_rate_changes_duration() -> None:
    slow, _ = synthesize_pcm16(ENGLISH, "en-us", rate_wpm=120)
    fast, _ = synthesize_pcm16(ENGLISH, "en-us", rate_wpm=300)
    assert len(slow) > 1.8 * len(fast)


@pytest.mark.parametrize(
    ("requested", "expected"),
    [
        ("ko-KR-SunHiNeural", "ko"),
        ("ko", "ko"),
        ("en-US-AriaNeural", "en-us"),
        ("en_US", "en-us"),
        ("en-GB-SoniaNeural", "en"),
        ("zh-CN-XiaoxiaoNeural", "cmn"),
        ("ja-JP-NanamiNeural", "ja"),
        ("en-gb-x-rp", "en-gb-x-rp"),
        ("xx-YY-NobodyNeural", DEFAULT_VOICE),
        (None, DEFAULT_VOICE),
        ("", DEFAULT_VOICE),
    ],
)
def test_voice_mapping(requested: str | None, expected: str) -> None:
    assert espeak_voice_for(requested) == expected


async def test_list_voices_has_languages_and_usable_ids() -> None:
    voices = await EspeakTTS().list_voices()
    by_id = {v.id: v for v in voices}
    assert len(by_id) == len(voices) > 50
    assert by_id["ko"].language == "ko"
    assert by_id["en-us"].language == "en-us"
    assert by_id["ja"].language == "ja"
    assert {v.provider for v in voices} == {"espeak"}
    for voice_id in ("ko", "en-us", "ja", "cmn", "de", "fr"):
        pcm, _ = synthesize_pcm16("1 2 3", by_id[voice_id].id)
        assert _rms(_samples(pcm)) > 0.01, voice_id


async def test_concurrent_syntheses_match_sequential_output() -> None:
    texts = [(ENGLISH, "en-us"), (KOREAN, "ko"), ("Bonjour tout le monde.", "fr")] * 3
    expected = [synthesize_pcm16(t, v)[0] for t, v in texts]
    tts = EspeakTTS()

    async def collect(text: str, voice: str) -> bytes:
        return b"".join([c.data async for c in tts.synthesize(text, voice)])

    # Threads calling the sync helper race with the async provider on the same library.
    thread_out: dict[int, bytes] = {}

    def in_thread(i: int) -> None:
        thread_out[i] = synthesize_pcm16(*texts[i])[0]

    threads = [threading.Thread(target=in_thread, args=(i,)) for i in range(len(texts))]
    for th in threads:
        th.start()
    got = await asyncio.gather(*(collect(t, v) for t, v in texts))
    for th in threads:
        th.join()
    # Interleaved calls on the global library would mix voices, split or merge audio.
    for i, want in enumerate(expected):
        assert _same_speech(got[i], want), texts[i]
        assert _same_speech(thread_out[i], want), texts[i]


def test_sink_returning_false_aborts_synthesis() -> None:
    received: list[bytes] = []

    def first_only(pcm: bytes) -> bool:
        received.append(pcm)
        return False

    long_text = " ".join([ENGLISH] * 40)
    _synthesize_into(long_text, "en-us", None, first_only)
    assert len(received) == 1
    full, _ = synthesize_pcm16(long_text, "en-us")
    assert len(received[0]) < len(full) / 20


async def test_consumer_stopping_early_leaves_engine_usable() -> None:
    tts = EspeakTTS()
    stream = tts.synthesize(" ".join([ENGLISH] * 40), "en-us")
    first = await anext(stream)
    await stream.aclose()
    assert len(first.data) > 0
    chunks = [c async for c in tts.synthesize("Still working.", "en-us")]
    assert sum(len(c.data) for c in chunks) > 22050  # more than half a second


def test_unknown_exact_voice_raises_tts_error() -> None:
    with pytest.raises(TTSError):
        _synthesize_into("hello", "no-such-voice-zz", None, lambda _pcm: True)


def test_word_events_and_parameters_do_not_leak_between_calls() -> None:
    """libespeak-ng's callback and parameters are global: one call's pitch and word
    listener must not carry over into the next (the prosody tests and the server share it)."""
    import numpy as np

    from analysis.prosody import analyze_prosody
    from server.providers.tts.espeak import synthesize_pcm16

    def pitch_of(pcm: bytes, rate: int) -> float:
        audio = np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0
        hz = analyze_prosody(audio, rate, "ah").pitch_hz
        assert hz is not None
        return hz

    words: list[int] = []
    synthesize_pcm16("one two three four", "en-us", on_word=words.append)
    assert len(words) == 4 and words == sorted(words)
    high = pitch_of(*synthesize_pcm16("aaaah, aaaah", "en-us", pitch=95))
    after = pitch_of(*synthesize_pcm16("aaaah, aaaah", "en-us"))
    assert after < high * 0.9  # the default pitch is back
    assert len(words) == 4  # the earlier listener heard nothing of later calls
