"""FishSpeechTTS against the loopback Fish Speech fake: cloning, streaming PCM, errors.

The fake answers 330 Hz when a reference voice reached it and 220 Hz otherwise, so the
audio itself proves whether cloning happened.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import time

import numpy as np
import pytest

from server.providers.audio_io import decode_audio, write_wav
from server.providers.tts import AudioChunk, FallbackTTS, TTSError, TTSProvider
from server.providers.tts.espeak import EspeakTTS, synthesize_pcm16
from server.providers.tts.fish import FishSpeechTTS, ReferenceLoader, WavStreamParser
from tests.fakes.fish_server import FakeFish

TEXT = "안녕하세요, 오늘 하루는 어땠어요?"


@pytest.fixture(scope="module")
def user_reference() -> bytes:
    """A real spoken reference clip: espeak speech wrapped in a WAV file."""
    pcm, rate = synthesize_pcm16("This is my voice, please copy it.", "en-us")
    return write_wav(pcm, rate)


def loader_for(references: dict[str, bytes]) -> ReferenceLoader:
    """A reference store: user id -> WAV bytes (None when the user has no reference)."""

    async def load(user_id: str | None) -> bytes | None:
        return references.get(user_id or "")

    return load


def dominant_hz(pcm: bytes, rate: int) -> float:
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(samples.size)))
    return float(np.fft.rfftfreq(samples.size, 1 / rate)[int(np.argmax(spectrum))])


async def collect(
    provider: TTSProvider, text: str, voice: str | None = None, user_id: str | None = None
) -> list[AudioChunk]:
    return [c async for c in provider.synthesize(text, voice, user_id=user_id)]


@pytest.mark.parametrize("wire", ["msgpack", "json"])
async def test_clones_user_voice_and_streams_pcm(
    fake_fish: FakeFish, user_reference: bytes, wire: str
) -> None:
    tts = FishSpeechTTS(
        fake_fish.base_url,
        reference_loader=loader_for({"u1": user_reference}),
        reference_text="This is my voice, please copy it.",
        wire=wire,  # type: ignore[arg-type]
    )
    try:
        chunks = await collect(tts, TEXT, user_id="u1")
    finally:
        await tts.close()
    request = fake_fish.tts_requests()[-1]
    assert request["content_type"] == f"application/{wire}"
    refs = request["body"]["references"]
    assert len(refs) == 1 and refs[0]["audio"] == user_reference
    assert refs[0]["text"] == "This is my voice, please copy it."
    assert request["body"]["streaming"] is True and request["body"]["text"] == TEXT

    assert len(chunks) > 1  # streamed, not one blob
    assert {(c.format, c.sample_rate) for c in chunks} == {("pcm16", fake_fish.sample_rate)}
    assert all(len(c.data) % 2 == 0 for c in chunks)
    pcm = b"".join(c.data for c in chunks)
    assert len(pcm) // 2 == request["samples"]  # header stripped, nothing lost
    assert abs(len(pcm) / 2 / fake_fish.sample_rate - fake_fish.duration_for(TEXT)) < 0.01
    assert abs(dominant_hz(pcm, fake_fish.sample_rate) - 330) < 5  # cloned voice


async def test_without_reference_uses_default_voice(fake_fish: FakeFish) -> None:
    tts = FishSpeechTTS(fake_fish.base_url, reference_loader=loader_for({}))
    try:
        pcm = b"".join(c.data for c in await collect(tts, TEXT, user_id="nobody"))
    finally:
        await tts.close()
    assert fake_fish.tts_requests()[-1]["body"]["references"] == []
    assert abs(dominant_hz(pcm, fake_fish.sample_rate) - 220) < 5


async def test_non_streaming_wav_and_mp3(fake_fish: FakeFish) -> None:
    wav = FishSpeechTTS(fake_fish.base_url, streaming=False)
    mp3 = FishSpeechTTS(fake_fish.base_url, format="mp3")
    try:
        pcm_chunks = await collect(wav, TEXT)
        mp3_chunks = await collect(mp3, TEXT)
    finally:
        await wav.close()
        await mp3.close()
    pcm = b"".join(c.data for c in pcm_chunks)
    assert len(pcm) // 2 == round(fake_fish.duration_for(TEXT) * fake_fish.sample_rate)
    assert {c.format for c in mp3_chunks} == {"mp3"}
    decoded = decode_audio(b"".join(c.data for c in mp3_chunks), fake_fish.sample_rate)
    assert abs(decoded.size / fake_fish.sample_rate - fake_fish.duration_for(TEXT)) < 0.1


async def test_server_error_raises_tts_error(fake_fish: FakeFish) -> None:
    fake_fish.fail_next(500)
    tts = FishSpeechTTS(fake_fish.base_url)
    try:
        with pytest.raises(TTSError, match="HTTP 500"):
            await collect(tts, TEXT)
        assert len(await collect(tts, TEXT)) > 0  # the next call works again
    finally:
        await tts.close()


async def test_a_stream_that_breaks_is_not_called_unreachable(fake_fish: FakeFish) -> None:
    fake_fish.break_next()
    tts = FishSpeechTTS(fake_fish.base_url)
    try:
        with pytest.raises(TTSError, match="stopped mid-answer") as err:
            await collect(tts, TEXT)
        assert "unreachable" not in str(err.value)
        assert len(await collect(tts, TEXT)) > 0  # the next call works again
    finally:
        await tts.close()


async def test_unknown_reference_id_is_a_tts_error(fake_fish: FakeFish) -> None:
    tts = FishSpeechTTS(fake_fish.base_url)
    try:
        with pytest.raises(TTSError, match="HTTP 500"):
            await collect(tts, TEXT, voice="no-such-voice")
    finally:
        await tts.close()


async def test_unreachable_server_fails_fast_and_falls_back() -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    fish = FishSpeechTTS(f"http://127.0.0.1:{port}")
    start = time.perf_counter()
    with pytest.raises(TTSError, match="unreachable"):
        await collect(fish, TEXT)
    assert time.perf_counter() - start < 2.0
    reasons: list[str] = []
    tts = FallbackTTS(fish, EspeakTTS(), on_degraded=reasons.append)
    chunks = await collect(tts, TEXT, voice="ko")
    assert chunks and chunks[0].sample_rate == 22050 and len(reasons) == 1
    await tts.close()


async def test_garbage_response_is_a_tts_error() -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        body = b"<html>not audio at all</html>"
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    tts = FishSpeechTTS(f"http://127.0.0.1:{port}")
    try:
        with pytest.raises(TTSError, match="not WAV"):
            await collect(tts, TEXT)
    finally:
        await tts.close()
        server.close()
        await server.wait_closed()


async def test_list_voices_reads_server_references(fake_fish: FakeFish) -> None:
    fake_fish.references["seoa"] = {"audio": b"RIFF", "text": "hi"}
    tts = FishSpeechTTS(fake_fish.base_url)
    try:
        voices = await tts.list_voices()
        assert "seoa" in {v.id for v in voices}
        chunks = await collect(tts, TEXT, voice="seoa")  # stored voice by reference_id
    finally:
        await tts.close()
        fake_fish.references.pop("seoa", None)
    assert fake_fish.tts_requests()[-1]["body"]["reference_id"] == "seoa"
    pcm = b"".join(c.data for c in chunks)
    assert abs(dominant_hz(pcm, fake_fish.sample_rate) - 330) < 5


def test_wav_parser_any_split_float_and_stereo() -> None:
    rng = np.random.default_rng(7)
    mono = rng.integers(-20000, 20000, 5000, dtype=np.int16)
    wav = write_wav(mono.astype("<i2").tobytes(), 24000)
    for _ in range(50):
        parser = WavStreamParser()
        cuts = np.sort(rng.choice(np.arange(1, len(wav)), size=20, replace=False))
        pieces = np.split(np.frombuffer(wav, dtype=np.uint8), cuts)
        out = b"".join(parser.feed(p.tobytes()) for p in pieces)
        parser.finish()
        assert out == mono.astype("<i2").tobytes() and parser.sample_rate == 24000
    stereo = np.stack([mono, mono], axis=1).astype("<i2").tobytes()
    parser = WavStreamParser()
    assert parser.feed(write_wav(stereo, 16000, channels=2)) == mono.astype("<i2").tobytes()

    floats = (mono / 32768.0).astype("<f4").tobytes()
    fmt = struct.pack("<HHIIHH", 3, 1, 16000, 16000 * 4, 4, 32)
    float_wav = (
        b"RIFF" + struct.pack("<I", 0) + b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt
        + b"data" + struct.pack("<I", 0) + floats
    )  # fmt: skip
    back = np.frombuffer(WavStreamParser().feed(float_wav), dtype="<i2").astype(int)
    assert np.abs(back - mono.astype(int)).max() <= 1
    with pytest.raises(TTSError, match="not supported"):
        WavStreamParser().feed(float_wav.replace(fmt, struct.pack("<HHIIHH", 2, 1, 8000, 0, 0, 4)))
