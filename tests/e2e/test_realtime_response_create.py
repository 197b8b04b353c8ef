"""`response.create` as OpenAI Realtime clients send it, through the official SDK: a
response's own `instructions`, `output_modalities` and `max_output_tokens` hold for that
response only (the session's come back after its response.done, and a session.update
meanwhile stores the session's own); a second response.create while one runs is refused
as OpenAI refuses it (the running one goes on); what one response cannot have here (out of
band, its own input) is an error naming the field."""

from __future__ import annotations

from typing import Any

from tests.e2e.test_protocol_realtime import RT, Factory, client, until
from tests.fakes.openai_server import FakeOpenAI


async def add_text(conn: Any, text: str) -> None:
    content = [{"type": "input_text", "text": text}]
    await conn.conversation.item.create(
        item={"type": "message", "role": "user", "content": content}
    )


def system_prompt(llm: FakeOpenAI) -> str:
    return llm.chat_requests(mem0=False)[-1]["body"]["messages"][0]["content"]


async def test_a_responses_own_settings_hold_for_it_alone(
    server_factory: Factory, llm: FakeOpenAI
) -> None:
    srv = server_factory(llm, **RT)
    seen: list[Any] = []
    async with client(srv, "rhea").realtime.connect(model="emma") as conn:
        await until(conn, "session.created", seen)
        await conn.session.update(session={"type": "realtime", "instructions": "Be brief."})
        await until(conn, "session.updated", seen)

        # refused before anything runs: the field is named
        await add_text(conn, "How do I feel?")
        for bad, param in (
            ({"conversation": "none"}, "response.conversation"),
            ({"input": []}, "response.input"),
            ({"output_modalities": ["video"]}, "response.output_modalities"),
            ({"max_output_tokens": 0}, "response.max_output_tokens"),
        ):
            await conn.response.create(response=bad)
            err = await until(conn, "error", seen)
            assert err.error.param == param, err
        assert not [e for e in seen if e.type == "response.created"]

        llm.queue_reply(tokens=[f"w{i} " for i in range(40)], token_ms=30)
        once = {"instructions": "Answer in one word.", "output_modalities": ["text"]}
        await conn.response.create(response=once | {"max_output_tokens": 5})
        created = await until(conn, "response.created", seen)
        assert created.response.output_modalities == ["text"]
        assert created.response.max_output_tokens == 5
        # meanwhile: a second response.create is refused, a session.update is the session's
        await add_text(conn, "And now?")
        await conn.response.create()
        busy = await until(conn, "error", seen)
        assert busy.error.code == "conversation_already_has_active_response"
        await conn.session.update(session={"type": "realtime", "max_output_tokens": 300})
        updated = await until(conn, "session.updated", seen)
        assert updated.session.instructions == "Be brief."
        assert updated.session.output_modalities == ["audio"]
        done = await until(conn, "response.done", seen)
        assert done.response.status == "completed"  # not cut by the refused one
        assert done.response.output[0].content[0].type == "output_text"
        assert not [e for e in seen if e.type == "response.output_audio.delta"]
        body = llm.chat_requests(mem0=False)[-1]["body"]
        assert body.get("max_completion_tokens", body.get("max_tokens")) == 5
        assert "Answer in one word." in system_prompt(llm)
        assert "Be brief." not in system_prompt(llm)

        # the next response has the session's settings again (and the one set meanwhile);
        # null fields of a response are not given, the session's hold
        llm.queue_reply("Fine.")
        await conn.response.create(response={"instructions": None, "max_output_tokens": None})
        nxt = await until(conn, "response.done", seen)
        assert nxt.response.output_modalities == ["audio"] and nxt.response.max_output_tokens == 300
        assert nxt.response.output[0].content[0].type == "output_audio"
        assert "Be brief." in system_prompt(llm)
        assert "Answer in one word." not in system_prompt(llm)


async def test_items_can_be_retrieved(server_factory: Factory, llm: FakeOpenAI) -> None:
    """conversation.item.retrieve (Pipecat's OpenAI Realtime service has it): the item as
    its conversation.item.done said; an unknown id is OpenAI's
    item_retrieve_invalid_item_id with the client's event_id (Pipecat matches on both)."""
    srv = server_factory(llm, **(RT | {"default_output_audio": "none"}))
    seen: list[Any] = []
    async with client(srv, "rory").realtime.connect(model="emma") as conn:
        await until(conn, "session.created", seen)
        await add_text(conn, "Hello there")
        user = (await until(conn, "conversation.item.done", seen)).item
        llm.queue_reply("Hi!")
        await conn.response.create()
        reply = (await until(conn, "response.done", seen)).response.output[0]
        for item in (user, reply):
            await conn.conversation.item.retrieve(item_id=item.id)
            got = await until(conn, "conversation.item.retrieved", seen)
            assert got.item.model_dump() == item.model_dump()
        for wrong in ("item_nope", ["x"]):
            ask = {"type": "conversation.item.retrieve", "item_id": wrong, "event_id": "rci_1"}
            await conn.send(ask)
            err = (await until(conn, "error", seen)).error
            assert (err.code, err.event_id) == ("item_retrieve_invalid_item_id", "rci_1")
        await add_text(conn, "Still here?")
        assert (await until(conn, "conversation.item.done", seen)).item.content[0].text
