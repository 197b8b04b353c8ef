"""The persona graph through a real server: intimacy-driven speech style, the silent plan,
memory switched off."""

from __future__ import annotations

import httpx

from tests.fakes.openai_server import FakeOpenAI
from tests.server_harness import ServerThread, open_ws


async def system_prompt_of_next_turn(server: ServerThread, llm: FakeOpenAI, user: str) -> str:
    ws = await open_ws(server, persona="이서아", token=user)
    await ws.wait_for("session.created")
    llm.queue_reply("응!")
    await ws.send({"type": "input_text", "text": "안녕"})
    await ws.wait_for("response.done")
    await ws.conn.close()
    return llm.chat_requests(mem0=False)[-1]["body"]["messages"][0]["content"]


async def test_speech_style_turns_casual_as_intimacy_grows(server: ServerThread, llm: FakeOpenAI):
    first = await system_prompt_of_next_turn(server, llm, "newbie")
    assert "격식체" in first and "반말" not in first.split("Relationship level")[1].split("\n")[0]
    # a user with 30 past turns with this persona has reached the casual level
    store = server.services.store
    old = await server.call(store.create_session("regular", "이서아", {}))
    for i in range(30):
        await server.call(store.add_message("regular", old.id, "이서아", "user", f"메시지 {i}"))
    casual = await system_prompt_of_next_turn(server, llm, "regular")
    level_line = casual.split("Relationship level")[1].split("\n")[0]
    assert level_line.startswith(" 2 (반말)")
    # another persona's turns do not count towards 이서아
    other = await server.call(store.create_session("stranger", "emma", {}))
    for i in range(30):
        await server.call(store.add_message("stranger", other.id, "emma", "user", f"hi {i}"))
    assert "격식체" in await system_prompt_of_next_turn(server, llm, "stranger")


async def test_filler_only_input_stays_silent_without_calling_the_llm(
    server: ServerThread, llm: FakeOpenAI
):
    ws = await open_ws(server, persona="emma", token="quiet")
    await ws.wait_for("session.created")
    await ws.send({"type": "input_text", "text": "음..."})
    done = await ws.wait_for("response.done")
    assert done["status"] == "completed" and done["text"] == ""
    assert ws.of_type("response.text.delta") == []
    assert llm.chat_requests(mem0=False) == []


async def test_turns_work_with_memory_disabled(server_factory, llm: FakeOpenAI):
    server = server_factory(llm, memory_enabled=False)
    async with httpx.AsyncClient(base_url=server.url) as http:
        assert (await http.get("/health")).json()["modules"]["memory"] == "disabled"
    ws = await open_ws(server, persona="emma", token="nomem")
    await ws.wait_for("session.created")
    llm.queue_reply("Hello without memory.")
    await ws.send({"type": "input_text", "text": "hi"})
    assert (await ws.wait_for("response.done"))["text"] == "Hello without memory."
    assert llm.requests.of_kind("embeddings") == []


async def test_history_window_bounds_prompt_and_graph_state(server_factory, llm: FakeOpenAI):
    server = server_factory(llm, history_messages=4, memory_enabled=False)
    ws = await open_ws(server, persona="emma", token="longtalk")
    sess = (await ws.wait_for("session.created"))["session"]
    for i in range(5):
        llm.queue_reply(f"reply {i}")
        await ws.send({"type": "input_text", "text": f"message {i}"})
        await ws.wait_for("response.done")
    prompt = llm.chat_requests(mem0=False)[-1]["body"]["messages"]
    assert [m["content"] for m in prompt[1:]] == ["message 3", "reply 3", "message 4"]
    state = await server.call(server.services.agent.history(sess["thread_id"]))
    assert [m.content for m in state] == ["message 3", "reply 3", "message 4", "reply 4"]
    # the store keeps the whole conversation
    stored = await server.call(server.services.store.list_messages("longtalk", sess["id"]))
    assert len(stored) == 10
