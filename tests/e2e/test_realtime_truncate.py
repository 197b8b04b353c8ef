"""OpenAI Realtime's usual barge-in: the reply completed (response.done), the client played
part of it, the user spoke, and the client sends `conversation.item.truncate` at what it
played. The stored reply says it was cut (`interrupted`), keeps what was heard, counts as
an interrupted reply in /v1/usage (once), and the model's next turn sees the heard part."""

from __future__ import annotations

import base64
from typing import Any

import httpx

from tests.e2e.test_protocol_realtime import RT, Factory, client, say, until
from tests.fakes.openai_server import FakeOpenAI

REPLY = "Kites fly high. The wind is kind today. We could go to the hill after lunch."


async def spoken_reply(conn: Any, llm: FakeOpenAI, seen: list[Any]) -> tuple[str, int]:
    """REPLY asked for and spoken to its end: its item id and how many ms of audio it has."""
    llm.queue_reply(REPLY)
    await say(conn, "Tell me about kites")
    done = await until(conn, "response.done", seen)
    assert done.response.status == "completed"
    audio = b"".join(
        base64.b64decode(e.delta) for e in seen if e.type == "response.output_audio.delta"
    )
    return done.response.output[0].id, len(audio) // 48


async def test_a_completed_reply_truncated_is_stored_as_cut(
    server_factory: Factory, llm: FakeOpenAI
) -> None:
    srv = server_factory(llm, **RT)
    seen: list[Any] = []
    async with client(srv, "trudy").realtime.connect(model="emma") as conn:
        sid = (await until(conn, "session.created", seen)).session.id
        item, audio_ms = await spoken_reply(conn, llm, seen)
        for end in (audio_ms // 4, audio_ms // 5):  # a second truncate is not a second cut
            await conn.conversation.item.truncate(item_id=item, content_index=0, audio_end_ms=end)
            assert (await until(conn, "conversation.item.truncated", seen)).audio_end_ms == end
        llm.queue_reply("Yes.")
        await say(conn, "Go on")
        assert (await until(conn, "response.done", seen)).response.status == "completed"
        # cancelled while generated (counted then), then truncated where playback stopped
        llm.queue_reply(tokens=[f"Sentence {i} is here. " for i in range(40)], token_ms=30)
        await say(conn, "Count for me")
        first = await until(conn, "response.output_audio.delta", seen)
        await conn.response.cancel()
        cancelled = await until(conn, "response.done", seen)
        assert cancelled.response.status == "cancelled"
        await conn.conversation.item.truncate(
            item_id=first.item_id, content_index=0, audio_end_ms=10
        )
        await until(conn, "conversation.item.truncated", seen)
    async with httpx.AsyncClient(base_url=srv.url, params={"token": "trudy"}) as http:
        msgs = (await http.get(f"/v1/sessions/{sid}/messages")).json()["messages"]
        usage = (await http.get("/v1/usage")).json()["usage"]
    cut = msgs[1]
    assert cut["role"] == "assistant" and cut["interrupted"] is True, msgs
    assert cut["content"] and REPLY.startswith(cut["content"]) and cut["content"] != REPLY
    assert msgs[3]["content"] == "Yes." and msgs[3]["interrupted"] is False
    assert usage.get("interrupted_replies") == 2, usage  # each cut reply once
    history = llm.chat_requests(mem0=False)[-1]["body"]["messages"]
    said = [m["content"] for m in history if m["role"] == "assistant"][:1]
    assert said == [cut["content"]], said  # the model heard of its reply what the user did


async def test_a_truncated_reply_cannot_grow_back(server_factory: Factory, llm: FakeOpenAI) -> None:
    """After a truncate the item's audio is that long (OpenAI answers a later, longer one
    with "Audio content of Nms is already shorter than Mms"): a truncate beyond the first
    cut is refused and the stored reply stays as first cut. It used to be accepted, and a
    cut at 0 (nothing heard: no reply stored) followed by a longer one left no reply."""
    srv = server_factory(llm, **RT)
    seen: list[Any] = []
    async with client(srv, "regrow").realtime.connect(model="emma") as conn:
        sid = (await until(conn, "session.created", seen)).session.id
        item, audio_ms = await spoken_reply(conn, llm, seen)
        cut = audio_ms // 3
        await conn.conversation.item.truncate(item_id=item, content_index=0, audio_end_ms=cut)
        assert (await until(conn, "conversation.item.truncated", seen)).audio_end_ms == cut
        await conn.conversation.item.truncate(
            item_id=item, content_index=0, audio_end_ms=audio_ms // 2
        )
        err = await until(conn, "error", seen)
        assert err.error.code == "invalid_value", err
        assert (
            err.error.message
            == f"Audio content of {cut}ms is already shorter than {audio_ms // 2}ms"
        )
        await conn.conversation.item.truncate(item_id=item, content_index=0, audio_end_ms=cut)
        assert (await until(conn, "conversation.item.truncated", seen)).audio_end_ms == cut
    async with httpx.AsyncClient(base_url=srv.url, params={"token": "regrow"}) as http:
        msgs = (await http.get(f"/v1/sessions/{sid}/messages")).json()["messages"]
    reply = [m for m in msgs if m["role"] == "assistant"]
    assert len(reply) == 1 and reply[0]["interrupted"] is True, msgs
    heard = reply[0]["content"]
    assert heard and REPLY.startswith(heard) and len(heard) < len(REPLY) // 2, heard
