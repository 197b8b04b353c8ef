"""A spoken turn over /v1/ws with STT_PROVIDER=openai: VAD local, partials and the final
transcript from a real transcription server on loopback (the GPU box of a deployment)."""

from __future__ import annotations

import httpx

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
