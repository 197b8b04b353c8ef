"""The mouth track on our own protocol: a `response.audio.visemes` event per 0x11 chunk,
whose keyframes cover exactly that chunk's audio (espeak-ng speech, pcm16 output)."""

from __future__ import annotations

from collections.abc import Callable

from tests.fakes.openai_server import FakeOpenAI
from tests.server_harness import (
    ServerThread,
    audio_chunk_seconds,
    avatar_ws,
    open_ws,
    played_turn,
)


async def test_each_audio_chunk_has_its_mouth_timeline(
    server_factory: Callable[..., ServerThread], llm: FakeOpenAI
) -> None:
    srv = server_factory(
        llm, tts_provider="espeak", tts_fallback=False, default_output_audio="pcm16"
    )
    ws = await avatar_ws(srv, "ava")
    llm.queue_reply("Hello there. How are you doing on this fine day?")
    await played_turn(ws, "Hi")
    chunks = audio_chunk_seconds(ws)
    mouths = {e["seq"]: e["keyframes"] for e in ws.of_type("response.audio.visemes")}
    assert set(mouths) == set(chunks) and len(chunks) >= 2
    for seq, seconds in chunks.items():
        assert abs(sum(k["duration"] for k in mouths[seq]) - seconds) <= 0.02
    shapes = {v for keys in mouths.values() for k in keys for v in k["targets"]}
    assert shapes and shapes <= {"aa", "ih", "ou", "ee", "oh"}
    assert any(k["targets"] == {} for keys in mouths.values() for k in keys)  # pauses close it
    # a session that did not ask gets none
    ws2 = await open_ws(srv, persona="emma", token="bo")
    await ws2.wait_for("session.created")
    llm.queue_reply("Hello.")
    await ws2.send({"type": "input_text", "text": "Hi"})
    await ws2.wait_for("response.audio.done", timeout=30)
    assert not ws2.of_type("response.audio.visemes")
    # every mouth event follows its chunk and comes before response.audio.done
    types = [e["type"] for e in ws.events]
    assert max(i for i, t in enumerate(types) if t == "response.audio.visemes") < types.index(
        "response.audio.done"
    )
