"""CachedTTS in front of real providers: the Fish Speech HTTP double (counts the requests
that reach it), offline EdgeTTS falling back to real espeak-ng, and the TTL and size cap."""

from __future__ import annotations

from server.providers.tts.base import AudioChunk, TTSProvider
from server.providers.tts.cache import CachedTTS
from server.providers.tts.edge import EdgeTTS
from server.providers.tts.espeak import EspeakTTS
from server.providers.tts.fallback import FallbackTTS
from server.providers.tts.fish import FishSpeechTTS
from tests.fakes.fish_server import FakeFish


async def collect(tts: TTSProvider, text: str, **kw: object) -> bytes:
    out: list[AudioChunk] = []
    async for chunk in tts.synthesize(text, **kw):  # type: ignore[arg-type]
        out.append(chunk)
    return b"".join(c.data for c in out)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_repeated_phrase_is_synthesized_once_and_counted(fake_fish: FakeFish) -> None:
    seen: list[tuple[str | None, bool]] = []
    tts = CachedTTS(
        FishSpeechTTS(fake_fish.base_url, streaming=False),
        ttl_s=60,
        max_bytes=8 << 20,
        on_lookup=lambda user, hit: seen.append((user, hit)),
    )
    try:
        first = await collect(tts, "Good morning!", user_id="u1")
        again = await collect(tts, "Good morning!", user_id="u2")
        other = await collect(tts, "Good night!", user_id="u1")
    finally:
        await tts.close()
    assert first and again == first and other != first
    assert [r["body"]["text"] for r in fake_fish.tts_requests()] == ["Good morning!", "Good night!"]
    assert seen == [("u1", False), ("u2", True), ("u1", False)]
    assert tts.stats()["hits"] == 1 and tts.stats()["misses"] == 2
    # another voice is another entry
    assert tts.key("Good morning!", "v2", None) != tts.key("Good morning!", None, None)


async def test_entries_expire_after_the_ttl_and_the_size_cap_evicts_oldest(
    fake_fish: FakeFish,
) -> None:
    clock = Clock()
    inner = FishSpeechTTS(fake_fish.base_url, streaming=False)
    one = len(await collect(inner, "Hello there."))
    tts = CachedTTS(inner, ttl_s=10, max_bytes=one * 4 + 10, clock=clock)
    try:
        await collect(tts, "Hello there.")
        clock.now += 9
        await collect(tts, "Hello there.")  # still fresh: a hit
        clock.now += 2
        await collect(tts, "Hello there.")  # expired: synthesized again
        assert tts.stats()["hits"] == 1 and tts.stats()["misses"] == 2
        for text in ("Hello therA.", "Hello therB.", "Hello therC.", "Hello therD."):
            await collect(tts, text)  # the same size each: the first one falls out
        assert tts.stats()["bytes"] <= tts.max_bytes and tts.stats()["entries"] == 4
        before = len(fake_fish.tts_requests())
        await collect(tts, "Hello there.")
        assert len(fake_fish.tts_requests()) == before + 1  # evicted, so synthesized again
    finally:
        await tts.close()


async def test_a_cloned_voice_is_cached_per_reference(fake_fish: FakeFish) -> None:
    version = {"u1": "v1"}
    tts = CachedTTS(
        FishSpeechTTS(fake_fish.base_url, streaming=False),
        ttl_s=60,
        max_bytes=8 << 20,
        scope=lambda user: f"{user}:{version.get(user or '', '')}",
    )
    try:
        await collect(tts, "It's me.", user_id="u1")
        await collect(tts, "It's me.", user_id="u1")
        await collect(tts, "It's me.", user_id="u2")  # another user's voice
        version["u1"] = "v2"  # the user uploaded a new reference
        await collect(tts, "It's me.", user_id="u1")
    finally:
        await tts.close()
    assert len(fake_fish.tts_requests()) == 3 and tts.stats()["hits"] == 1


async def test_fallback_voice_audio_is_not_cached() -> None:
    """Offline, edge-tts fails and espeak-ng speaks: that audio must not be served later,
    when the online voice is back."""
    tts = CachedTTS(
        FallbackTTS(EdgeTTS(), EspeakTTS(), retry_after_s=3600), ttl_s=60, max_bytes=8 << 20
    )
    try:
        a = await collect(tts, "Testing the fallback.")
        b = await collect(tts, "Testing the fallback.")
        assert a and b
        assert tts.degraded is True  # passes through to the fallback provider
        assert tts.stats()["entries"] == 0 and tts.stats()["hits"] == 0
    finally:
        await tts.close()
