"""A spoken turn over /v1/ws with STT_PROVIDER=openai: VAD local, partials and the final
transcript from a real transcription server on loopback (the GPU box of a deployment)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from server.providers.audio_io import float_to_pcm16, write_wav
from tests.e2e.test_voice import stream_audio
from tests.fakes.openai_server import FakeOpenAI
from tests.fakes.transcription_server import TranscriptionServer
from tests.server_harness import open_ws
from tests.speech import speak, with_silence

LONG = (
    "I went to the market this morning to buy apples, oranges, bread and fresh milk for the "
    "whole family."
)


async def test_spoken_turn_through_a_remote_transcription_server(
    server_factory, llm: FakeOpenAI, transcriber: TranscriptionServer
):
    server = server_factory(
        llm,
        stt_provider="openai",
        stt_base_url=transcriber.base_url,
        stt_api_key="gpu-key",
        stt_partial_interval_ms=400,
    )
    async with httpx.AsyncClient(base_url=server.url) as http:
        for _ in range(100):
            health = (await http.get("/health/details")).json()
            if health["modules"]["stt"] != "loading":
                break
    assert health["modules"]["stt"] == "ready", health
    llm.queue_reply("Yes, foxes are quick.")
    ws = await open_ws(server, persona="emma", token="rita")
    await ws.wait_for("session.created")
    await stream_audio(ws, with_silence(speak(LONG), 300, 1000), realtime=1.0)
    done = await ws.wait_for("transcript.done", timeout=60)
    words = set(done["text"].lower().replace(".", "").replace(",", "").split())
    assert len(words & {"market", "morning", "apples", "bread", "milk", "family"}) >= 5, done
    created = await ws.wait_for("response.created", timeout=30)
    resp = await ws.wait_for("response.done", response_id=created["response_id"], timeout=30)
    assert resp["status"] == "completed"
    calls = [r for r in transcriber.requests if r["kind"] == "transcription"]
    assert len(calls) >= 2  # partials and the final went to the remote server
    assert all(c["body"]["model"] == "whisper-1" for c in calls)
    partials = [e for e in ws.of_type("transcript.delta") if e["item_id"] == done["item_id"]]
    assert partials and all(p["_t"] < done["_t"] for p in partials)


async def test_a_transcription_server_down_at_start_is_used_once_it_is_back(
    server_factory, llm: FakeOpenAI, whisper: Path
):
    """The GPU box is down when the server starts: the speaker (and a REST caller) is told
    why, on an open socket; once the box is back, the next request and utterance are
    transcribed and answered, and the server's status says ready again, without a restart."""
    gpu = TranscriptionServer(whisper).start()
    gpu.stop()  # its port, now closed: the box is down
    server = server_factory(
        llm, stt_provider="openai", stt_base_url=gpu.base_url, stt_partial_interval_ms=400
    )
    try:
        async with httpx.AsyncClient(base_url=server.url) as http:
            health = await settled_stt(http)
            assert health["modules"]["stt"] == "error", health
            assert "unreachable" in health["details"]["stt"], health
            ws = await open_ws(server, persona="emma", token="rita")
            await ws.wait_for("session.created")
            await stream_audio(ws, with_silence(speak("Hello there."), 300, 1000))
            err = await ws.wait_for("error", timeout=30)
            assert err["code"] in {"stt_failed", "stt_unavailable"}, err
            assert "unreachable" in err["message"], err
            wav = write_wav(float_to_pcm16(speak("Good morning.")), 16_000)
            files = {"audio_file": ("s.wav", wav)}
            r = await http.post("/v1/voice/analyze", files=files)
            assert r.status_code == 503 and "unreachable" in r.json()["detail"], r.text
            gpu.start()  # back, on the same address
            r = await http.post("/v1/voice/analyze", files=files)
            assert r.status_code == 200 and "morning" in r.json()["transcript"].lower(), r.text
            llm.queue_reply("Yes, foxes are quick.")
            await stream_audio(ws, with_silence(speak(LONG), 300, 1000), realtime=1.0)
            done = await ws.wait_for("transcript.done", timeout=60)
            assert "market" in done["text"].lower(), done
            created = await ws.wait_for("response.created", timeout=30)
            resp = await ws.wait_for("response.done", response_id=created["response_id"])
            assert resp["status"] == "completed"
            health = (await http.get("/health/details")).json()
            assert health["modules"]["stt"] == "ready", health
            assert "stt" not in health["details"], health
    finally:
        gpu.stop()


async def settled_stt(http: httpx.AsyncClient) -> dict:
    """/health/details once the STT module has left "loading"."""
    for _ in range(200):
        health = (await http.get("/health/details")).json()
        if health["modules"]["stt"] != "loading":
            return health
        await asyncio.sleep(0.05)
    raise AssertionError(f"stt still loading: {health}")
