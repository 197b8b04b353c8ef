"""The history viewer's REST over a real server: sessions carry persona names, first words,
message counts and report links; search finds sessions by what was said; delete removes a
closed session with its messages, samples, report and conversation checkpoint, never
another user's, never an open one."""

from __future__ import annotations

import httpx

from server.store.base import Sample
from tests.fakes.openai_server import FakeOpenAI
from tests.server_harness import ServerThread, open_ws, text_turn


async def test_history_lists_searches_and_deletes(server: ServerThread, llm: FakeOpenAI):
    ids = []
    for words in ("Let's plan a trip to Busan next week", "How do I bake sourdough bread?"):
        ws = await open_ws(server, persona="이서아", token="hana")
        ids.append((await ws.wait_for("session.created"))["session"]["id"])
        llm.queue_reply("Sounds good!")
        await text_turn(ws, words)
        await ws.conn.close()
    busan, bread = ids
    live = await open_ws(server, persona="이서아", token="hana")
    open_id = (await live.wait_for("session.created"))["session"]["id"]
    store = server.services.store
    await server.call(store.add_samples("hana", busan, [Sample("face", 10, {"concentration": 5})]))
    thread = (await server.call(store.get_session("hana", busan))).thread_id
    assert await server.call(server.services.agent.history(thread))

    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        listed = (await http.get("/v1/sessions", params={"token": "hana"})).json()["sessions"]
        found = (await http.get("/v1/sessions", params={"token": "hana", "q": "busan"})).json()
        theirs = await http.get("/v1/sessions", params={"token": "mallory", "q": "busan"})
        steal = await http.delete(f"/v1/sessions/{busan}", params={"token": "mallory"})
        still_open = await http.delete(f"/v1/sessions/{open_id}", params={"token": "hana"})
        gone = await http.delete(f"/v1/sessions/{busan}", params={"token": "hana"})
        again = await http.delete(f"/v1/sessions/{busan}", params={"token": "hana"})
        messages = await http.get(f"/v1/sessions/{busan}/messages", params={"token": "hana"})
        report = await http.get(f"/v1/sessions/{busan}/report", params={"token": "hana"})
        after = (await http.get("/v1/sessions", params={"token": "hana"})).json()["sessions"]
        empty_q = await http.get("/v1/sessions", params={"token": "hana", "q": ""})

    by_id = {s["id"]: s for s in listed}
    assert by_id[busan]["title"] == "Let's plan a trip to Busan next week"
    assert by_id[busan]["persona_name"] == "이서아" and by_id[busan]["message_count"] == 2
    assert by_id[busan]["report_url"] == f"/v1/sessions/{busan}/report"
    assert by_id[open_id]["title"] is None and by_id[open_id]["message_count"] == 0
    assert [s["id"] for s in found["sessions"]] == [busan]
    assert theirs.json()["sessions"] == []
    assert steal.status_code == 404
    assert still_open.status_code == 409 and "open" in still_open.json()["detail"]
    assert gone.status_code == 200 and gone.json() == {"deleted": True, "session_id": busan}
    assert again.status_code == 404 and messages.status_code == 404
    assert report.status_code == 404
    assert {s["id"] for s in after} == {bread, open_id}
    assert empty_q.status_code == 422
    assert await server.call(store.list_samples("hana", busan)) == []
    assert await server.call(server.services.agent.history(thread)) == []
