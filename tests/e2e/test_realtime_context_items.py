"""System and assistant message items as OpenAI Realtime clients seed context with them
(Pipecat's OpenAI Realtime service sends both, with input_text parts), and
`conversation.item.delete`, through the official SDK: an item is stored before its
conversation.item.done, the next response's prompt has it, a deleted one is gone from the
transcript and the prompt, and an id this conversation does not have (another user's
included) answers OpenAI's error naming it."""

from __future__ import annotations

from typing import Any

import httpx

from tests.e2e.test_protocol_realtime import RT, Factory, client, say, until
from tests.fakes.openai_server import FakeOpenAI


def item(role: str, text: str, kind: str = "input_text") -> dict[str, Any]:
    return {"type": "message", "role": role, "content": [{"type": kind, "text": text}]}


def prompt(llm: FakeOpenAI) -> list[tuple[str, str]]:
    """The last model request's messages after its own system prompt."""
    body = llm.chat_requests(mem0=False)[-1]["body"]
    return [(m["role"], m["content"]) for m in body["messages"][1:]]


async def test_system_and_assistant_items_reach_the_prompt_and_delete_removes_them(
    server_factory: Factory, llm: FakeOpenAI
) -> None:
    srv = server_factory(llm, **RT | {"default_output_audio": "none"})
    seen: list[Any] = []
    async with client(srv, "sol").realtime.connect(model="emma") as conn:
        sid = (await until(conn, "session.created", seen)).session.id
        # a system note and an assistant line (Pipecat's input_text, and output_text)
        await conn.conversation.item.create(item=item("system", "The user is called Sol."))
        added = await until(conn, "conversation.item.added", seen)
        done = await until(conn, "conversation.item.done", seen)
        assert added.item.role == done.item.role == "system"
        note = done.item.id
        async with httpx.AsyncClient(base_url=srv.url, params={"token": "sol"}) as http:
            msgs = (await http.get(f"/v1/sessions/{sid}/messages")).json()["messages"]
        assert [(m["role"], m["content"]) for m in msgs] == [
            ("system", "The user is called Sol.")
        ]  # acknowledged means stored
        await conn.conversation.item.create(
            item=item("assistant", "I said I like kites.", "output_text") | {"id": "line1"}
        )
        done = await until(conn, "conversation.item.done", seen)
        assert (done.item.id, done.item.role) == ("line1", "assistant")
        assert done.item.content[0].text == "I said I like kites."

        llm.queue_reply("Hello Sol.")
        await say(conn, "Who am I?")
        reply = await until(conn, "response.done", seen)
        assert reply.response.status == "completed"
        assert prompt(llm) == [
            ("system", "The user is called Sol."),
            ("assistant", "I said I like kites."),
            ("user", "Who am I?"),
        ]

        # delete the note and the model's own reply: both gone from the next prompt
        for gone in (note, reply.response.output[0].id):
            await conn.conversation.item.delete(item_id=gone)
            assert (await until(conn, "conversation.item.deleted", seen)).item_id == gone
        await conn.conversation.item.delete(item_id=note)  # already gone
        err = await until(conn, "error", seen)
        assert err.error.code == "item_delete_invalid_item_id" and note in err.error.message
        llm.queue_reply("Fine.")
        await say(conn, "And now?")
        assert (await until(conn, "response.done", seen)).response.status == "completed"
        assert prompt(llm) == [
            ("assistant", "I said I like kites."),
            ("user", "Who am I?"),
            ("user", "And now?"),
        ]

        # bad items are errors, the socket stays
        for bad in (item("system", "  "), item("assistant", "x", "input_image")):
            await conn.conversation.item.create(item=bad)
            assert (await until(conn, "error", seen)).error.code in (
                "invalid_request_error",
                "unsupported_event",
            )
        await conn.conversation.item.create(item=item("system", "Sol is tired."))
        await until(conn, "conversation.item.done", seen)

    # resumed (the history is checked against the stored transcript): the note stays
    async with client(srv, "sol").realtime.connect(
        model="emma", extra_query={"session_id": sid}
    ) as conn:
        assert (await until(conn, "session.created", seen)).session.id == sid
        llm.queue_reply("Rest then.")
        await say(conn, "Hi again")
        assert (await until(conn, "response.done", seen)).response.status == "completed"
        assert prompt(llm)[-2:] == [("system", "Sol is tired."), ("user", "Hi again")]

    # another user's connection cannot delete this user's line
    async with client(srv, "eve").realtime.connect(model="emma") as conn:
        await until(conn, "session.created", seen)
        await conn.conversation.item.delete(item_id="line1")
        assert (await until(conn, "error", seen)).error.code == "item_delete_invalid_item_id"
    async with httpx.AsyncClient(base_url=srv.url, params={"token": "sol"}) as http:
        msgs = (await http.get(f"/v1/sessions/{sid}/messages")).json()["messages"]
    assert [(m["role"], m["content"]) for m in msgs] == [
        ("assistant", "I said I like kites."),
        ("user", "Who am I?"),
        ("user", "And now?"),
        ("assistant", "Fine."),
        ("system", "Sol is tired."),
        ("user", "Hi again"),
        ("assistant", "Rest then."),
    ]
