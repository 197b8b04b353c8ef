"""Per-sentence emotion marks through the whole server, on every protocol: the fake LLM
writes marks split across stream chunks; no mark reaches displayed text, speech or stored
history, and each sentence carries its emotion (ws_v1 response.emotion and visemes, DMP
tts_chunk.emotion and expression keyframes, Realtime response metadata)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx
from openai import AsyncOpenAI

from tests.dmp_client import BridgeConfig, BridgeRest, DmpClient
from tests.fakes.openai_server import FakeOpenAI
from tests.server_harness import (
    ServerThread,
    audio_chunk_seconds,
    avatar_ws,
    played_turn,
)

# "[happy] Hello there. [sad] I lost my kite today." with both tags cut mid-token
TAGGED = ["[hap", "py] Hello the", "re. [s", "ad", "] I lost my kite", " today."]
CLEAN = "Hello there. I lost my kite today."
# 이서아 writes emoji marks; the presentation selector arrives in the next chunk
EMOJI = ["😊", "\ufe0f 안녕", "하세요. 😢", " 연이 날", "아갔어요."]
CLEAN_KO = "안녕하세요. 연이 날아갔어요."


async def test_emotion_marks_on_every_protocol(
    server_factory: Callable[..., ServerThread], llm: FakeOpenAI
) -> None:
    srv = server_factory(
        llm, tts_provider="espeak", tts_fallback=False, default_output_audio="pcm16"
    )

    # --- our own protocol: clean deltas, response.emotion in place, visemes with faces ---
    ws = await avatar_ws(srv, "eve")
    llm.queue_reply(tokens=TAGGED)
    done = await played_turn(ws, "How was your day?")
    assert done["text"] == CLEAN
    stream = [e for e in ws.events if e["type"] in ("response.text.delta", "response.emotion")]
    shown = "".join(e.get("delta", "") for e in stream)
    assert shown == CLEAN
    marks = [(i, e["emotion"]) for i, e in enumerate(stream) if e["type"] == "response.emotion"]
    assert [m for _, m in marks] == ["happy", "sad"]
    before_sad = "".join(e.get("delta", "") for e in stream[: marks[1][0]])
    assert before_sad.strip() == "Hello there."  # the mark stands where it was written
    # each 0x11 chunk's mouth timeline carries its sentence's emotion and expression
    seconds = audio_chunk_seconds(ws)
    visemes = sorted(ws.of_type("response.audio.visemes"), key=lambda e: e["seq"])
    assert {v["seq"] for v in visemes} == set(seconds)
    emotions = [v["emotion"] for v in visemes]
    assert emotions[0] == "happy" and emotions[-1] == "sad"
    assert emotions == sorted(emotions, key=["happy", "sad"].index)  # one switch, in order
    for v in visemes:
        assert all(k["targets"].get(v["emotion"]) == 1.0 for k in v["keyframes"])
        assert abs(sum(k["duration"] for k in v["keyframes"]) - seconds[v["seq"]]) <= 0.02
    # the prompt taught the marks; the stored history has none
    prompt = llm.chat_requests(mem0=False)[-1]["body"]["messages"][0]["content"]
    assert "[happy] happy" in prompt and "[sad] sad" in prompt
    async with httpx.AsyncClient(base_url=srv.url, headers={"Authorization": "Bearer eve"}) as h:
        sid = (await h.get("/v1/sessions")).json()["sessions"][0]["id"]
        msgs = (await h.get(f"/v1/sessions/{sid}/messages")).json()["messages"]
    assert [m["content"] for m in msgs] == ["How was your day?", CLEAN]

    # --- DesktopMatePlus: tts_chunk.emotion and expression keyframes, with and without audio
    cfg = BridgeConfig(ws_url=f"ws://127.0.0.1:{srv.port}/v1/chat/stream", rest_url=srv.url)
    dmp = await DmpClient.open(cfg)
    await dmp.wait_for("authorize_success")
    llm.queue_reply(tokens=TAGGED)
    turn = await dmp.turn("How was your day?")
    assert turn.tokens == CLEAN and turn.end["content"] == CLEAN
    chunks = turn.chunks
    assert [(c["text"], c["emotion"]) for c in chunks] == [
        ("Hello there.", "happy"),
        ("I lost my kite today.", "sad"),
    ]
    for c in chunks:  # the mouth timeline holds the sentence's expression throughout
        assert c["audio_base64"] and all(k["targets"][c["emotion"]] == 1.0 for k in c["keyframes"])
        assert {t for k in c["keyframes"] for t in k["targets"]} - {c["emotion"]} <= {
            "aa",
            "ih",
            "ou",
            "ee",
            "oh",
        }
    history = (await BridgeRest(cfg).history(turn.start["session_id"])).json()["messages"]
    assert [m["content"] for m in history] == ["How was your day?", CLEAN]
    # text only, a persona that writes emoji marks
    llm.queue_reply(tokens=EMOJI)
    start = len(dmp.events)
    await dmp.send_message("안녕", agent_id="이서아", tts_enabled=False)
    end = await dmp.wait_for("stream_end", after=start)
    silent = dmp.of_type("tts_chunk", after=start)
    assert [(c["text"], c["emotion"], c["audio_base64"]) for c in silent] == [
        ("안녕하세요.", "happy", None),
        ("연이 날아갔어요.", "sad", None),
    ]
    assert [c["keyframes"][0]["targets"] for c in silent] == [{"happy": 1.0}, {"sad": 1.0}]
    assert end["content"] == CLEAN_KO
    assert "".join(e["chunk"] for e in dmp.of_type("stream_token", after=start)) == CLEAN_KO
    await dmp.close()

    # --- OpenAI Realtime (the SDK): clean text, the emotions in the response's metadata ---
    oai = AsyncOpenAI(base_url=f"{srv.url}/v1", api_key="rita")
    async with oai.realtime.connect(model="emma") as conn:
        seen: list[Any] = []

        async def until(type_: str) -> Any:
            async with asyncio.timeout(30):
                while (ev := await conn.recv()).type != type_:
                    seen.append(ev)
                return ev

        await until("session.created")
        await conn.session.update(session={"type": "realtime", "output_modalities": ["text"]})
        await until("session.updated")
        llm.queue_reply(tokens=TAGGED)
        await conn.conversation.item.create(
            item={
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": "Hi"}],
            }
        )
        await conn.response.create()
        rdone = await until("response.done")
    deltas = "".join(e.delta for e in seen if e.type == "response.output_text.delta")
    assert deltas == CLEAN and rdone.response.output[0].content[0].text == CLEAN
    assert rdone.response.metadata == {"emotions": "happy sad"}
