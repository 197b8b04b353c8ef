"""The user's memory controls (GET/DELETE /v1/memories) and POST /v1/chat running the same
agent, tools and perception as the user's live session."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx

from tests.e2e.test_screen import SCREEN, look_then_answer, ui_jpeg
from tests.fakes.openai_server import FakeOpenAI
from tests.server_harness import ServerThread, open_ws

Factory = Callable[..., ServerThread]


def auth(user: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {user}"}


async def test_memories_list_delete_one_and_all_own_data_only(
    server: ServerThread,
) -> None:
    memory = server.services.memory
    a1 = await server.call(memory.add("mona", "Mona likes tulips", "preference"))
    await server.call(memory.add("mona", "Mona works at a bakery", "work"))
    n1 = await server.call(memory.add("nick", "Nick likes roses", "preference"))
    async with httpx.AsyncClient(base_url=server.url) as http:
        got = (await http.get("/v1/memories", headers=auth("mona"))).json()
        assert {m["memory"] for m in got["memories"]} == {
            "Mona likes tulips",
            "Mona works at a bakery",
        }
        first = got["memories"][0]
        assert set(first) == {
            "id",
            "memory",
            "category",
            "created_at",
            "updated_at",
            "source",
            "tier",
        }
        assert "preference" in got["categories"] and got["categories"] == sorted(got["categories"])
        # another user's id is 404, like an unknown one, and stays
        r = await http.delete(f"/v1/memories/{n1}", headers=auth("mona"))
        assert r.status_code == 404 and r.json()["detail"] == "No such memory for this user."
        assert (
            await http.delete("/v1/memories/not-a-uuid", headers=auth("mona"))
        ).status_code == 404
        r = await http.delete(f"/v1/memories/{a1}", headers=auth("mona"))
        assert r.status_code == 200 and r.json() == {"deleted": a1}
        assert (await http.delete(f"/v1/memories/{a1}", headers=auth("mona"))).status_code == 404
        got = (await http.get("/v1/memories?limit=1", headers=auth("mona"))).json()
        assert [m["memory"] for m in got["memories"]] == ["Mona works at a bakery"]
        assert (
            await http.get("/v1/memories?limit=100000", headers=auth("mona"))
        ).status_code == 422
        r = await http.delete("/v1/memories", headers=auth("mona"))
        assert r.json() == {"deleted": 1}
        assert (await http.get("/v1/memories", headers=auth("mona"))).json()["memories"] == []
        nick = (await http.get("/v1/memories", headers=auth("nick"))).json()["memories"]
        assert [m["memory"] for m in nick] == ["Nick likes roses"]


async def test_memories_without_memory_is_503(server_factory: Factory, llm: FakeOpenAI) -> None:
    srv = server_factory(llm, memory_enabled=False)
    async with httpx.AsyncClient(base_url=srv.url) as http:
        r = await http.get("/v1/memories", headers=auth("olga"))
    assert r.status_code == 503 and "not available" in r.json()["detail"]


async def test_rest_chat_sees_the_users_live_session_screen(
    server_factory: Factory, llm: FakeOpenAI
) -> None:
    llm.set_default(look_then_answer("You have a window open."))
    srv = server_factory(
        llm,
        vlm_base_url=llm.base_url,
        vlm_api_key="k",
        vlm_model="fake-vlm",
        vlm_min_interval_s=0.0,
    )
    ws = await open_ws(srv, persona="emma", token="pia")
    await ws.wait_for("session.created")
    await ws.send_raw(SCREEN + ui_jpeg(3))
    assert (await ws.wait_for("vision.description"))["text"] == "screen #1"
    async with httpx.AsyncClient(base_url=srv.url, timeout=30) as http:
        r = await http.post(
            "/v1/chat", json={"user_id": "pia", "message": "지금 화면에 뭐가 보여?"}
        )
        assert r.status_code == 200, r.text
        assert r.json()["text_response"] == "You have a window open."
        answer = llm.chat_requests(mem0=False)[-1]
        tool = [m for m in answer["body"]["messages"] if m["role"] == "tool"][-1]
        assert json.loads(tool["content"]) == {"available": True, "screen": "screen #1"}
        # another user with no session (and no desktop capture) is told there is no screen
        r = await http.post(
            "/v1/chat", json={"user_id": "quin", "message": "지금 화면에 뭐가 보여?"}
        )
        assert r.status_code == 200
        answer = llm.chat_requests(mem0=False)[-1]
        tool = [m for m in answer["body"]["messages"] if m["role"] == "tool"][-1]
        assert json.loads(tool["content"])["available"] is False
        # the REST transcript shows the look
        thread = r.json()["thread_id"]
        msgs = (await http.get(f"/v1/sessions/{thread}/messages", headers=auth("quin"))).json()
    roles = [(m["role"], m["content"]) for m in msgs["messages"]]
    assert roles[1] == ("system", "[tool get_screen_context] no screen to look at")
    await ws.conn.close()


async def test_rest_chat_uses_tools_with_the_same_store(
    server: ServerThread, llm: FakeOpenAI
) -> None:
    llm.queue_reply(
        tool_calls=[
            {"name": "schedule_create", "arguments": {"message": "Call mom", "in_minutes": 60}}
        ]
    )
    llm.queue_reply("I'll remind you.")
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        r = await http.post(
            "/v1/chat", json={"user_id": "rita", "message": "Remind me to call mom in an hour"}
        )
        assert r.json()["text_response"] == "I'll remind you."
        rows = (await http.get("/v1/reminders", headers=auth("rita"))).json()["reminders"]
    assert [x["text"] for x in rows] == ["Call mom"]
