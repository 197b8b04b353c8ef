"""GET/PUT /v1/settings over a real server: saved defaults start every new session (persona,
system prompt that replaces or adds to the persona's, sampling), the model sees them, a
session.update still changes only its session; validation and per-user isolation."""

from __future__ import annotations

import httpx

from tests.fakes.openai_server import FakeOpenAI
from tests.server_harness import ServerThread, open_ws, text_turn

PIRATE = "You are Bill, a pirate who answers in one short sentence."


def system_prompt(llm: FakeOpenAI) -> str:
    messages = llm.chat_requests(mem0=False)[-1]["body"]["messages"]
    return messages[0]["content"]


async def test_saved_defaults_start_new_sessions(server: ServerThread, llm: FakeOpenAI):
    chosen = {
        "persona": "emma",
        "instructions": PIRATE,
        "instructions_mode": "replace",
        "temperature": 0.2,
    }
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        assert (await http.get("/v1/settings?token=sol")).json() == {"settings": {}}
        put = await http.put("/v1/settings?token=sol", json=chosen)
        got = await http.get("/v1/settings?token=sol")
        other = await http.get("/v1/settings?token=moon")
        unknown = await http.put("/v1/settings?token=sol", json={"persona": "nobody"})
        wrong_type = await http.put("/v1/settings?token=sol", json={"temperature": "0.5"})
        extra = await http.put("/v1/settings?token=sol", json={"temperature": 0.5, "x": 1})
    assert put.status_code == 200 and put.json() == {"settings": chosen}
    assert got.json() == {"settings": chosen} and other.json() == {"settings": {}}
    assert unknown.status_code == 404 and "nobody" in unknown.json()["detail"]
    assert wrong_type.status_code == 422 and extra.status_code == 422

    ws = await open_ws(server, token="sol")  # no persona asked for: the saved one
    session = (await ws.wait_for("session.created"))["session"]
    assert session["persona"]["id"] == "emma"
    assert session["instructions_mode"] == "replace" and session["temperature"] == 0.2
    llm.queue_reply("Arr, that be true.")
    await text_turn(ws, "Is the sea big?")
    prompt = system_prompt(llm)
    assert prompt.startswith(PIRATE) and "Emma" not in prompt
    assert llm.chat_requests(mem0=False)[-1]["body"]["temperature"] == 0.2

    await ws.send({"type": "session.update", "session": {"instructions_mode": "append"}})
    assert (await ws.wait_for("session.updated"))["session"]["instructions_mode"] == "append"
    llm.queue_reply("Of course.")
    await text_turn(ws, "And the sky?")
    prompt = system_prompt(llm)
    assert "Emma" in prompt and prompt.endswith(f"Extra instructions for this session: {PIRATE}")
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        # the session's change is the session's: the saved defaults are unchanged
        assert (await http.get("/v1/settings?token=sol")).json() == {"settings": chosen}
