"""Voice analysis over a real server: espeak speech streamed as 20 ms mic frames -> real VAD
and faster-whisper base -> transcript.done -> analysis.voice and a stored voice sample; and
POST /v1/voice/analyze on WAV and MP3 uploads."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np
import pytest

from server.providers.audio_io import encode_mp3, float_to_pcm16, write_wav
from tests.fakes.openai_server import FakeOpenAI
from tests.server_harness import ServerThread, open_ws
from tests.speech import pcm16_frames, speak, speech_offset_ms, with_silence

SENTENCE = "Thank you so much, I really love this wonderful idea."
EXPECTED = {"thank", "you", "love", "wonderful", "idea"}


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    return speak(SENTENCE)


@pytest.fixture
def stt_server(
    server_factory: Callable[..., ServerThread], llm: FakeOpenAI, whisper: Path
) -> ServerThread:
    # replies with audio: the analysis waits for the reply's first audio
    srv = server_factory(
        llm, stt_model=str(whisper), stt_language="en", default_output_audio="pcm16"
    )
    deadline = time.monotonic() + 60
    while srv.services.modules.get("stt") != "ready":
        assert srv.services.modules.get("stt") == "loading", srv.services.details
        assert time.monotonic() < deadline, "STT did not load"
        time.sleep(0.05)
    return srv


def words_of(text: str) -> set[str]:
    return set(text.lower().replace(",", " ").replace(".", " ").split())


async def test_spoken_utterance_gets_voice_analysis_and_a_sample(
    stt_server: ServerThread, llm: FakeOpenAI, speech: np.ndarray
):
    # slow tokens: the reply's first audio (its first 4 words) goes out ~0.5 s after its
    # first text, and the analysis must not run in between
    llm.queue_reply("That is lovely to hear.", token_ms=150)
    ws = await open_ws(stt_server, persona="emma", token="va1")
    sess = (await ws.wait_for("session.created"))["session"]
    for frame in pcm16_frames(with_silence(speech, 300, 1500)):
        await ws.send_raw(b"\x01" + frame)
        await asyncio.sleep(0.005)
    done = await ws.wait_for("transcript.done", timeout=60)
    assert len(words_of(done["text"]) & EXPECTED) >= 4, done
    ev = await ws.wait_for("analysis.voice", timeout=30)
    assert ev["item_id"] == done["item_id"]
    # its GIL-holding work starts once the reply's first audio went out: it never delays it
    assert any(b[0] == 0x11 for b in ws.binary), "analysis.voice came before the reply audio"
    assert 80 <= ev["pitch_hz"] <= 300, ev
    assert 1.0 <= ev["rate_wps"] <= 6.0, ev
    assert ev["pitch_var"] >= 0 and ev["volume_db"] < 0 and 0 <= ev["pause_ratio"] <= 1
    assert 0 <= ev["energy"] <= 1 and 0 <= ev["warmth"] <= 1
    assert ev["words"]["words"] >= 8 and ev["words"]["positive"] >= 1
    assert ev["words"]["polite"] + ev["words"]["empathetic"] >= 1  # "thank you"
    # the reply did not wait for the analysis: both arrive (the analysis starts only once
    # the reply is under way, so response.done may come first)
    if not ws.of_type("response.done"):
        await ws.wait_for("response.done", timeout=30)
    assert ws.of_type("response.created")[0]["_t"] < ev["_t"]
    await ws.send({"type": "session.end"})
    await ws.wait_for("session.ended", timeout=10)
    [sample] = await stt_server.call(
        stt_server.services.store.list_samples("va1", sess["id"], "voice")
    )
    fields = {k: v for k, v in ev.items() if k not in {"type", "item_id", "_t"}}
    assert sample.data == fields
    # t_ms: where the utterance ended on the session timeline (the stream's ms, as the VAD
    # placed it: after the last loud sample, within its silence and padding allowance)
    speech_end_ms = speech_offset_ms(with_silence(speech, 300, 0))
    assert speech_end_ms - 100 <= sample.t_ms <= speech_end_ms + 1200, (sample.t_ms, speech_end_ms)


async def test_rest_voice_analysis_wav_and_mp3(stt_server: ServerThread, speech: np.ndarray):
    audio = with_silence(speech, 200, 300)
    wav = write_wav(float_to_pcm16(audio), 16_000)
    mp3 = encode_mp3(float_to_pcm16(audio), 16_000)
    headers = {"Authorization": "Bearer va2"}
    async with httpx.AsyncClient(base_url=stt_server.url, headers=headers, timeout=60) as http:
        for name, data, mime in (("s.wav", wav, "audio/wav"), ("s.mp3", mp3, "audio/mpeg")):
            r = await http.post("/v1/voice/analyze", files={"audio_file": (name, data, mime)})
            assert r.status_code == 200, r.text
            body = r.json()
            assert len(words_of(body["transcript"]) & EXPECTED) >= 4, body["transcript"]
            assert body["language"] == "en"
            assert abs(body["duration_s"] - len(audio) / 16_000) < 0.2
            assert 80 <= body["prosody"]["pitch_hz"] <= 300
            assert 1.0 <= body["prosody"]["rate_wps"] <= 6.0
            assert body["words"]["positive"] >= 1 and "matches" in body["words"]
        r = await http.post(
            "/v1/voice/analyze", files={"audio_file": ("x.wav", b"RIFF garbage" * 10)}
        )
        assert r.status_code == 400 and "Invalid audio file" in r.json()["detail"]
        usage = (await http.get("/v1/usage")).json()["usage"]
    assert usage["api_calls"] == 2


async def test_rest_voice_analysis_needs_stt(
    server_factory: Callable[..., ServerThread], llm: FakeOpenAI, speech: np.ndarray
):
    srv = server_factory(llm)  # the harness turns speech recognition off (STT_ENABLED=false)
    wav = write_wav(float_to_pcm16(speech), 16_000)
    async with httpx.AsyncClient(base_url=srv.url, timeout=30) as http:
        for _ in range(100):
            if srv.services.modules.get("stt") != "loading":
                break
            await asyncio.sleep(0.05)
        r = await http.post("/v1/voice/analyze", files={"audio_file": ("s.wav", wav)})
    assert r.status_code == 503 and "Speech-to-text is not ready" in r.json()["detail"]
