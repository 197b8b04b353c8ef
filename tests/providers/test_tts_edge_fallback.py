"""EdgeTTS fails fast offline; FallbackTTS then speaks with real espeak-ng audio.

These machines resolve no public DNS names, so edge-tts really fails here: that is the
condition the fallback exists for. The "working primary" is a tiny provider defined below
(a stand-in for an external service), never a mock of project code.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import numpy as np
import pytest

from server.providers.tts import (
    AudioChunk,
    EdgeTTS,
    EspeakTTS,
    FallbackTTS,
    TTSError,
    TTSProvider,
    Voice,
    edge_voice_for,
)
from server.providers.tts.fallback import PROBE_TEXT

KOREAN = "안녕하세요, 오늘 기분은 어때요?"
ENGLISH = "Hello there, how was your day today?"


class ToneTTS(TTSProvider):
    """A working provider: 100 ms of a 440 Hz tone per chunk, optionally failing."""

    name = "tone"

    def __init__(self, chunks: int = 3, fail_after: int | None = None, delay_s: float = 0.0):
        self.chunks = chunks
        self.fail_after = fail_after
        self.delay_s = delay_s
        self.calls: list[tuple[str, str | None]] = []

    async def synthesize(
        self, text: str, voice: str | None = None, *, user_id: str | None = None
    ) -> AsyncIterator[AudioChunk]:
        self.calls.append((text, voice))
        t = np.arange(1600) / 16000
        pcm = (np.sin(2 * np.pi * 440 * t) * 8000).astype("<i2").tobytes()
        for i in range(self.chunks):
            if self.fail_after is not None and i >= self.fail_after:
                raise TTSError("tone service went away")
            if self.delay_s:
                await asyncio.sleep(self.delay_s)
            yield AudioChunk(pcm, "pcm16", 16000)

    async def list_voices(self) -> list[Voice]:
        return [Voice("tone-a", "Tone A", "en-US", self.name)]


def pcm_of(chunks: list[AudioChunk]) -> np.ndarray:
    return np.frombuffer(b"".join(c.data for c in chunks), dtype="<i2")


async def collect(provider: TTSProvider, text: str, voice: str | None = None) -> list[AudioChunk]:
    return [chunk async for chunk in provider.synthesize(text, voice)]


async def test_edge_raises_tts_error_quickly_offline() -> None:
    edge = EdgeTTS()
    start = time.perf_counter()
    with pytest.raises(TTSError, match="edge-tts unreachable"):
        await collect(edge, KOREAN)
    elapsed = time.perf_counter() - start
    print(f"edge-tts failure after {elapsed * 1000:.0f} ms")
    assert elapsed < 5.0


async def test_edge_list_voices_offline_uses_static_list() -> None:
    voices = await EdgeTTS(list_voices_timeout_s=2.0).list_voices()
    ids = {v.id for v in voices}
    assert {
        "ko-KR-SunHiNeural",
        "ko-KR-InJoonNeural",
        "en-US-JennyNeural",
        "en-US-GuyNeural",
        "ja-JP-NanamiNeural",
    } <= ids
    assert all(v.provider == "edge" for v in voices)


async def test_edge_punctuation_only_yields_nothing_without_network() -> None:
    assert await collect(EdgeTTS(), "... !!") == []


def test_edge_voice_mapping() -> None:
    assert edge_voice_for("en-US-GuyNeural") == "en-US-GuyNeural"
    assert edge_voice_for("ja") == "ja-JP-NanamiNeural"
    assert edge_voice_for("en_GB") == "en-GB-SoniaNeural"
    assert edge_voice_for(None) == "ko-KR-SunHiNeural"
    assert edge_voice_for("xx-unknown", default="en-US-JennyNeural") == "en-US-JennyNeural"


async def test_fallback_to_espeak_speaks_and_reports_degraded_once() -> None:
    reasons: list[str] = []
    tts = FallbackTTS(EdgeTTS(), EspeakTTS(), on_degraded=reasons.append, retry_after_s=60)
    assert not tts.degraded
    assert tts.first_chunk_words == EdgeTTS.first_chunk_words == 4  # the online engine's

    first = await collect(tts, KOREAN)
    assert tts.degraded
    assert tts.degraded_reason is not None and "edge-tts unreachable" in tts.degraded_reason
    # espeak-ng speaks now: its first chunk needs only 2 words (made in a few ms)
    assert tts.first_chunk_words == EspeakTTS.first_chunk_words == 2
    assert {(c.format, c.sample_rate) for c in first} == {("pcm16", 22050)}
    pcm = pcm_of(first)
    assert pcm.size > 22050 * 0.5  # at least half a second of speech
    assert np.abs(pcm).max() > 1000  # not silence

    start = time.perf_counter()
    second = await collect(tts, ENGLISH)
    skipped_primary_s = time.perf_counter() - start
    assert pcm_of(second).size > 22050 * 0.5
    assert reasons == [tts.degraded_reason]  # exactly one transition, one callback
    assert skipped_primary_s < 1.0  # no new edge attempt inside retry_after_s


async def test_fallback_maps_persona_voice_to_espeak_language() -> None:
    tts = FallbackTTS(EdgeTTS(), EspeakTTS(default_voice="en-us"))
    mapped = pcm_of(await collect(tts, KOREAN, "ko-KR-SunHiNeural")).size
    korean = pcm_of(await collect(EspeakTTS(default_voice="ko"), KOREAN)).size
    english = pcm_of(await collect(EspeakTTS(default_voice="en-us"), KOREAN)).size
    # espeak varies by a few samples between runs; voices differ by several percent.
    assert abs(mapped - korean) < 0.005 * korean
    assert abs(mapped - english) > 0.03 * english


async def test_primary_that_works_is_used_and_fallback_untouched() -> None:
    primary, backup = ToneTTS(), ToneTTS()
    reasons: list[str] = []
    tts = FallbackTTS(primary, backup, on_degraded=reasons.append)
    chunks = await collect(tts, ENGLISH, "tone-a")
    assert len(chunks) == 3 and all(c.sample_rate == 16000 for c in chunks)
    assert primary.calls == [(ENGLISH, "tone-a")]
    assert backup.calls == []
    assert not tts.degraded and reasons == []


async def test_mid_stream_failure_raises_instead_of_splicing_voices() -> None:
    backup = ToneTTS()
    tts = FallbackTTS(ToneTTS(chunks=3, fail_after=1), backup)
    got: list[AudioChunk] = []
    with pytest.raises(TTSError, match="mid-utterance"):
        async for chunk in tts.synthesize(ENGLISH):
            got.append(chunk)
    assert len(got) == 1
    assert backup.calls == []


async def test_slow_primary_times_out_to_fallback() -> None:
    backup = ToneTTS(chunks=1)
    tts = FallbackTTS(ToneTTS(delay_s=5.0), backup, first_chunk_timeout_s=0.2)
    start = time.perf_counter()
    chunks = await collect(tts, ENGLISH)
    assert time.perf_counter() - start < 2.0
    assert len(chunks) == 1 and backup.calls == [(ENGLISH, None)]
    assert tts.degraded and "timed out" in (tts.degraded_reason or "")


async def test_reprobes_primary_after_retry_interval_and_recovers() -> None:
    now = [1000.0]
    primary = ToneTTS(chunks=1, fail_after=0)
    backup = ToneTTS(chunks=1)
    reasons: list[str] = []
    recovered: list[bool] = []
    tts = FallbackTTS(
        primary,
        backup,
        on_degraded=reasons.append,
        retry_after_s=60,
        on_recovered=lambda: recovered.append(True),
        clock=lambda: now[0],
    )
    await collect(tts, "one")
    await collect(tts, "two")  # within 60 s: primary not asked
    assert [t for t, _ in primary.calls] == ["one"] and tts.probe is None
    now[0] += 61
    await collect(tts, "three")  # spoken by the backup; a probe starts beside it
    assert tts.probe is not None
    await tts.probe  # still failing: stays degraded, no new callback
    assert [t for t, _ in primary.calls] == ["one", PROBE_TEXT]
    assert tts.degraded and len(reasons) == 1
    primary.fail_after = None
    now[0] += 61
    await collect(tts, "four")  # the backup again; the probe finds the primary back
    assert tts.probe is not None
    await tts.probe
    assert not tts.degraded and recovered == [True]
    chunks = await collect(tts, "five")
    assert len(chunks) == 1 and [t for t, _ in primary.calls][-1] == "five"
    assert [t for t, _ in backup.calls] == ["one", "two", "three", "four"]
    primary.fail_after = 0
    await collect(tts, "six")  # a new outage is a new transition
    assert len(reasons) == 2


async def test_a_slow_probe_never_holds_up_speech() -> None:
    """A primary that hangs (a black-holed network) is probed in the background."""
    now = [1000.0]
    primary, backup = ToneTTS(chunks=1, fail_after=0), ToneTTS(chunks=1)
    tts = FallbackTTS(
        primary, backup, retry_after_s=60, first_chunk_timeout_s=1.0, clock=lambda: now[0]
    )
    await collect(tts, "one")
    primary.fail_after, primary.delay_s = None, 5.0
    now[0] += 61
    await collect(tts, "two")
    # the backup has spoken while the probe (which takes first_chunk_timeout_s to give up)
    # is still pending: speech did not wait for it
    assert tts.probe is not None and not tts.probe.done()
    await tts.probe  # gives up after first_chunk_timeout_s
    assert tts.degraded and "timed out" in (tts.degraded_reason or "")
    await tts.close()


async def test_both_failing_raises_tts_error() -> None:
    tts = FallbackTTS(ToneTTS(fail_after=0), ToneTTS(fail_after=0))
    with pytest.raises(TTSError, match="fallback failed too"):
        await collect(tts, ENGLISH)


async def test_list_voices_merges_primary_and_fallback() -> None:
    voices = await FallbackTTS(EdgeTTS(list_voices_timeout_s=2.0), EspeakTTS()).list_voices()
    providers = {v.provider for v in voices}
    assert providers == {"edge", "espeak"}
    assert any(v.id == "ko-KR-SunHiNeural" for v in voices)
