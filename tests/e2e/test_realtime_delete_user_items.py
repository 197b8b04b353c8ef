"""`conversation.item.delete` of the user's own items, through the official SDK: a typed
user message (also one of two that one response answered, and one still waiting for
response.create) and a spoken turn's item. As OpenAI's: `conversation.item.deleted`
answers, the item is gone from the stored transcript, and the next request to the model
no longer has its words. A reply cut after its user item was deleted settles alone."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from tests.e2e.test_protocol_realtime import RT, Factory, client, rt, say, until
from tests.fakes.openai_server import FakeOpenAI
from tests.server_harness import ServerThread
from tests.speech import speak, with_silence


def user(text: str) -> dict[str, Any]:
    return {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}


def prompt(llm: FakeOpenAI) -> list[tuple[str, str]]:
    """The last model request's messages after its own system prompt."""
    body = llm.chat_requests(mem0=False)[-1]["body"]
    return [(m["role"], m["content"]) for m in body["messages"][1:]]


async def transcript(srv: ServerThread, token: str, sid: str) -> list[tuple[str, str]]:
    async with httpx.AsyncClient(base_url=srv.url, params={"token": token}) as http:
        msgs = (await http.get(f"/v1/sessions/{sid}/messages")).json()["messages"]
    return [(m["role"], m["content"]) for m in msgs]


async def test_typed_user_items_can_be_deleted(server_factory: Factory, llm: FakeOpenAI) -> None:
    srv = server_factory(llm, **RT | {"default_output_audio": "none"})
    seen: list[Any] = []
    async with client(srv, "una").realtime.connect(model="emma") as conn:
        sid = (await until(conn, "session.created", seen)).session.id
        # two user items, one response: each is a message of its own
        await conn.conversation.item.create(item=user("My secret word is pumpkin."))
        secret = (await until(conn, "conversation.item.done", seen)).item.id
        await conn.conversation.item.create(item=user("Remember it."))
        asked = (await until(conn, "conversation.item.done", seen)).item.id
        llm.queue_reply("Noted.")
        await conn.response.create()
        assert (await until(conn, "response.done", seen)).response.status == "completed"
        assert prompt(llm) == [("user", "My secret word is pumpkin."), ("user", "Remember it.")]

        await conn.conversation.item.delete(item_id=secret)
        assert (await until(conn, "conversation.item.deleted", seen)).item_id == secret
        await conn.conversation.item.delete(item_id=secret)  # already gone
        assert (await until(conn, "error", seen)).error.code == "item_delete_invalid_item_id"
        await conn.conversation.item.retrieve(item_id=secret)
        assert (await until(conn, "error", seen)).error.code == "item_retrieve_invalid_item_id"
        assert await transcript(srv, "una", sid) == [
            ("user", "Remember it."),
            ("assistant", "Noted."),
        ]  # acknowledged means stored

        # an item still waiting for response.create: it never reaches the model
        await conn.conversation.item.create(item=user("Call me Pumpkin from now on."))
        waiting = (await until(conn, "conversation.item.done", seen)).item.id
        await conn.conversation.item.delete(item_id=waiting)
        assert (await until(conn, "conversation.item.deleted", seen)).item_id == waiting
        await conn.response.create()
        assert (await until(conn, "error", seen)).error.code == "invalid_request_error"

        llm.queue_reply("I do not know.")
        await say(conn, "What is my secret word?")
        assert (await until(conn, "response.done", seen)).response.status == "completed"
        words = " ".join(text for _, text in prompt(llm)).lower()
        assert "pumpkin" not in words
        assert prompt(llm) == [
            ("user", "Remember it."),
            ("assistant", "Noted."),
            ("user", "What is my secret word?"),
        ]

        # the user item a response answered goes too; its reply stays
        await conn.conversation.item.delete(item_id=asked)
        assert (await until(conn, "conversation.item.deleted", seen)).item_id == asked
        llm.queue_reply("Fine.")
        await say(conn, "Go on.")
        assert (await until(conn, "response.done", seen)).response.status == "completed"
        assert prompt(llm) == [  # the prompt's window starts where the user speaks
            ("user", "What is my secret word?"),
            ("assistant", "I do not know."),
            ("user", "Go on."),
        ]

        # deleted the moment its response is asked for, before response.created names its
        # stored message (a few times: the delete may be read before or after that): the
        # reply is made, then the item goes
        for n in range(4):
            await conn.conversation.item.create(item=user(f"My PIN is {n}321."))
            pin = (await until(conn, "conversation.item.done", seen)).item.id
            llm.queue_reply("I will keep it to myself.")
            await conn.response.create()
            await conn.conversation.item.delete(item_id=pin)
            assert (await until(conn, "response.done", seen)).response.status == "completed"
            assert (await until(conn, "conversation.item.deleted", seen)).item_id == pin

    # another user's connection knows none of these items
    async with client(srv, "eve").realtime.connect(model="emma") as conn:
        await until(conn, "session.created", seen)
        await conn.conversation.item.delete(item_id=asked)
        assert (await until(conn, "error", seen)).error.code == "item_delete_invalid_item_id"
    assert await transcript(srv, "una", sid) == [
        ("assistant", "Noted."),
        ("user", "What is my secret word?"),
        ("assistant", "I do not know."),
        ("user", "Go on."),
        ("assistant", "Fine."),
        *[("assistant", "I will keep it to myself.")] * 4,
    ]


async def test_a_spoken_item_can_be_deleted_and_its_reply_cut_alone(
    server_factory: Factory, llm: FakeOpenAI, whisper: Path
) -> None:
    srv = server_factory(llm, **rt(stt_model=str(whisper)))
    audio = with_silence(
        speak("The quick brown fox jumps over the lazy dog.", rate=24_000), 400, 1200, rate=24_000
    )
    pcm = (np.clip(audio, -1, 1) * 32767).round().astype("<i2").tobytes()
    seen: list[Any] = []
    async with client(srv, "vic").realtime.connect(model="emma") as conn:
        sid = (await until(conn, "session.created", seen)).session.id
        llm.queue_reply("What a lively animal that must be, running around all day.")
        for i in range(0, len(pcm), 9600):
            await conn.input_audio_buffer.append(audio=base64.b64encode(pcm[i : i + 9600]).decode())
        heard = await until(
            conn, "conversation.item.input_audio_transcription.completed", seen, timeout=60
        )
        # "lazy", not "fox": Whisper on some CPUs hears "brown fox" as "round fucks"
        assert "lazy" in heard.transcript.lower(), heard
        # deleted at once (a client filtering what it heard): the reply being made for it
        # finishes first, then the item goes
        await conn.conversation.item.delete(item_id=heard.item_id)
        reply = (await until(conn, "response.done", seen, timeout=60)).response
        assert reply.status == "completed"
        assert any("lazy" in text.lower() for role, text in prompt(llm) if role == "user")
        assert (await until(conn, "conversation.item.deleted", seen)).item_id == heard.item_id
        # the client stopped playing the reply early: it settles without the deleted words
        await conn.conversation.item.truncate(
            item_id=reply.output[0].id, content_index=0, audio_end_ms=1500
        )
        await until(conn, "conversation.item.truncated", seen)
        stored = await transcript(srv, "vic", sid)
        assert [role for role, _ in stored] == ["assistant"], stored
        assert stored[0][1] != reply.output[0].content[0].transcript  # cut: what was heard

        llm.queue_reply("Sure.")
        await say(conn, "Tell me more.")
        assert (await until(conn, "response.done", seen)).response.status == "completed"
    words = " ".join(text for _, text in prompt(llm)).lower()
    assert "fox" not in words and "lazy" not in words, prompt(llm)
    assert [m for m in prompt(llm) if m[0] == "user"] == [("user", "Tell me more.")]
