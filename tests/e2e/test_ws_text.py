"""Whole-server tests of the text spine: uvicorn on a free port, a real WebSocket client,
the real graph, store and mem0 against the fake OpenAI server."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import Any

import httpx

from tests.fakes.openai_server import FakeOpenAI
from tests.server_harness import ServerThread, WsClient, open_ws, text_turn


async def test_streamed_reply_equals_what_the_llm_produced(server: ServerThread, llm: FakeOpenAI):
    llm.queue_reply(tokens=["안녕하세요", "! ", "반가워요", "."])
    ws = await open_ws(server, persona="이서아", token="alice")
    created = await ws.wait_for("session.created")
    assert created["session"]["persona"] == {"id": "이서아", "name": "이서아"}
    assert created["session"]["user_id"] == "alice"
    deltas, done = await text_turn(ws, "안녕!")
    # what arrives from the model together goes out as one delta: the text is the same
    assert "".join(deltas) == "안녕하세요! 반가워요." and deltas
    assert done["status"] == "completed"
    assert done["text"] == "안녕하세요! 반가워요."
    assert done["timings"]["ttft_ms"] is not None and done["timings"]["total_ms"] >= 0
    assert done["usage"]["output_tokens"] > 0
    # the persona's system prompt was built from its JSON, at the formal level
    sys_prompt = llm.chat_requests(mem0=False)[-1]["body"]["messages"][0]["content"]
    assert "이서아" in sys_prompt and "격식체" in sys_prompt
    await ws.conn.close()
    # stored, in order, with the timings
    async with httpx.AsyncClient(base_url=server.url) as http:
        sid = created["session"]["id"]
        msgs = (
            await http.get(
                f"/v1/sessions/{sid}/messages", headers={"Authorization": "Bearer alice"}
            )
        ).json()["messages"]
    assert [(m["role"], m["content"]) for m in msgs] == [
        ("user", "안녕!"),
        ("assistant", "안녕하세요! 반가워요."),
    ]
    assert msgs[1]["timings"]["ttft_ms"] == done["timings"]["ttft_ms"]
    assert msgs[1]["interrupted"] is False


async def test_second_turn_sees_first_and_other_thread_does_not(
    server: ServerThread, llm: FakeOpenAI
):
    ws = await open_ws(server, persona="emma", token="bob")
    await ws.wait_for("session.created")
    llm.queue_reply("Nice to meet you, Bob.")
    await text_turn(ws, "My name is Bob and I like kites.")
    llm.queue_reply("You like kites.")
    await text_turn(ws, "What do I like?")
    second = llm.chat_requests(mem0=False)[-1]["body"]["messages"]
    contents = [m["content"] for m in second]
    assert "My name is Bob and I like kites." in contents
    assert "Nice to meet you, Bob." in contents
    # a new session is a new thread: no history from the first one
    ws2 = await open_ws(server, persona="emma", token="bob")
    await ws2.wait_for("session.created")
    llm.queue_reply("Hello!")
    await text_turn(ws2, "Hi again")
    third = [m["content"] for m in llm.chat_requests(mem0=False)[-1]["body"]["messages"]]
    assert "My name is Bob and I like kites." not in third
    assert third[-1] == "Hi again"


async def cancel_after(ws: WsClient, deltas: int) -> dict[str, Any]:
    """A long reply cancelled after ``deltas`` text deltas: its response.done comes at once
    and no text delta follows it."""
    await ws.send({"type": "input_text", "text": "Tell me a long story"})
    await ws.wait_for("response.created")
    for _ in range(deltas):
        await ws.wait_for("response.text.delta")
    t_cancel = time.monotonic()
    await ws.send({"type": "response.cancel"})
    done = await ws.wait_for("response.done")
    assert done["status"] == "cancelled"
    assert (done["_t"] - t_cancel) * 1000 < 500  # generous here; bench/latency.py measures
    with contextlib.suppress(TimeoutError):
        while True:  # no token flows after the done event
            assert (await ws.next_event(timeout=0.3))["type"] != "response.text.delta"
    return done


async def test_cancel_stops_tokens_and_stores_what_was_sent(server: ServerThread, llm: FakeOpenAI):
    ws = await open_ws(server, persona="emma", token="carol")
    created = await ws.wait_for("session.created")
    llm.queue_reply(tokens=[f"w{i} " for i in range(200)], token_ms=20)
    done = await cancel_after(ws, 5)
    sent = "".join(e["delta"] for e in ws.of_type("response.text.delta"))
    assert done["text"] == sent and 5 <= len(sent.split()) < 200
    await asyncio.sleep(0.1)
    store = server.services.store
    msgs = await server.call(store.list_messages("carol", created["session"]["id"]))
    assert msgs[-1].role == "assistant" and msgs[-1].interrupted is True
    assert msgs[-1].content == sent
    # the graph's history holds the truncated text too
    hist = await server.call(server.services.agent.history(created["session"]["thread_id"]))
    assert hist[-1].content == sent


async def test_new_input_cancels_the_streaming_reply(server: ServerThread, llm: FakeOpenAI):
    ws = await open_ws(server, persona="emma", token="dan")
    await ws.wait_for("session.created")
    llm.queue_reply(tokens=[f"a{i} " for i in range(100)], token_ms=20)
    llm.queue_reply("Second answer.")
    await ws.send({"type": "input_text", "text": "first"})
    first = await ws.wait_for("response.created")
    await ws.wait_for("response.text.delta")
    await ws.send({"type": "input_text", "text": "second"})
    done1 = await ws.wait_for("response.done", response_id=first["response_id"])
    assert done1["status"] == "cancelled"
    done2 = await ws.wait_for("response.done")
    assert done2["status"] == "completed" and done2["text"] == "Second answer."


async def test_resume_continues_thread_and_refuses_other_users(
    server: ServerThread, llm: FakeOpenAI
):
    ws = await open_ws(server, persona="emma", token="erin")
    sess = (await ws.wait_for("session.created"))["session"]
    llm.queue_reply("Noted: blue.")
    await text_turn(ws, "My favourite colour is blue.")
    await ws.conn.close()

    ws2 = await open_ws(server, session_id=sess["id"], token="erin")
    again = (await ws2.wait_for("session.created"))["session"]
    assert again["id"] == sess["id"] and again["thread_id"] == sess["thread_id"]
    assert again["resumed"] is True
    llm.queue_reply("Blue!")
    await text_turn(ws2, "What is my favourite colour?")
    contents = [m["content"] for m in llm.chat_requests(mem0=False)[-1]["body"]["messages"]]
    assert "My favourite colour is blue." in contents and "Noted: blue." in contents

    intruder = await open_ws(server, session_id=sess["id"], token="mallory")
    err = await intruder.wait_for("error")
    assert err["code"] == "session_not_found" and err["fatal"] is True


async def test_bad_inputs_get_errors_and_the_socket_stays_usable(server_factory, llm: FakeOpenAI):
    server = server_factory(llm, ws_max_text_bytes=2000, ws_max_messages_per_s=30)
    ws = await open_ws(server, persona="emma", token="frank")
    await ws.wait_for("session.created")
    cases = [
        ("not json", "invalid_json"),
        (json.dumps([1, 2]), "invalid_event"),
        (json.dumps({"text": "no type"}), "invalid_event"),
        (json.dumps({"type": "dance"}), "unknown_type"),
        (json.dumps({"type": "input_text"}), "invalid_event"),
        (json.dumps({"type": "input_text", "text": 42}), "invalid_event"),
        (json.dumps({"type": "input_text", "text": "   "}), "invalid_event"),
        (
            json.dumps({"type": "session.update", "session": {"temperature": "hot"}}),
            "invalid_event",
        ),
        (
            json.dumps({"type": "session.update", "session": {"persona": "../etc"}}),
            "unknown_persona",
        ),
        (json.dumps({"type": "input_text", "text": "x" * 3000}), "message_too_large"),
        (b"\x7fabc", "invalid_frame"),
        (b"", "invalid_frame"),
    ]
    for raw, code in cases:
        await ws.send_raw(raw)
        err = await ws.wait_for("error")
        assert err["code"] == code, (raw, err)
        assert err["fatal"] is False and err["message"]
        await asyncio.sleep(0.04)  # stay under the rate limit
    # input_image frames may exceed the text limit (they carry an image): not "too large"
    big = json.dumps({"type": "input_image", "source": "screen", "jpeg_b64": "QUJD" * 1000})
    await ws.send_raw(big)
    err = await ws.wait_for("error")
    assert err["code"] != "message_too_large" and err["fatal"] is False
    # still usable, and the session state is unharmed
    await ws.send({"type": "session.update", "session": {"temperature": 0.2}})
    upd = await ws.wait_for("session.updated")
    assert upd["session"]["temperature"] == 0.2 and upd["session"]["persona"]["id"] == "emma"
    llm.queue_reply("Still here.")
    _, done = await text_turn(ws, "hello?")
    assert done["text"] == "Still here."
    assert llm.chat_requests(mem0=False)[-1]["body"]["temperature"] == 0.2
    # flooding: over the per-second limit -> rate_limited errors, socket open
    for _ in range(60):
        await ws.send({"type": "ping"})
    err = await ws.wait_for("error", code="rate_limited")
    assert "per second" in err["message"]
    await asyncio.sleep(0.3)
    await ws.send({"type": "ping", "id": "after-flood"})
    try:
        await ws.wait_for("pong", id="after-flood", timeout=2)
    except TimeoutError:
        pass
    # one report for the whole burst, not one error per dropped message
    assert len(ws.of_type("error")) - len(cases) <= 2
    await asyncio.sleep(1.1)
    await ws.send({"type": "ping", "id": 7})
    assert (await ws.wait_for("pong", id=7))["type"] == "pong"


async def test_unknown_persona_and_bad_token_are_refused(server: ServerThread):
    ws = await open_ws(server, persona="nobody")
    err = await ws.wait_for("error")
    assert err["code"] == "unknown_persona" and err["fatal"] is True
    ws = await open_ws(server, token="bad token!")
    assert (await ws.wait_for("error"))["code"] == "unauthorized"


async def test_turn_without_llm_gets_a_clear_error(server_factory):
    server = server_factory(None)
    async with httpx.AsyncClient(base_url=server.url) as http:
        h = (await http.get("/health")).json()
    assert h["status"] == "ok" and h["modules"]["llm"] == "disabled"
    assert h["modules"]["memory"] == "disabled"
    ws = await open_ws(server, persona="emma")
    await ws.wait_for("session.created")
    await ws.send({"type": "input_text", "text": "hello"})
    err = await ws.wait_for("error")
    assert err["code"] == "llm_not_configured" and "LLM_BASE_URL" in err["message"]
    await ws.send({"type": "ping"})
    await ws.wait_for("pong")


async def test_llm_5xx_is_retried_then_connection_failure_reported(server_factory, llm: FakeOpenAI):
    server = server_factory(llm)
    ws = await open_ws(server, persona="emma", token="gina")
    await ws.wait_for("session.created")
    llm.queue_reply(fail_status=503)
    llm.queue_reply(fail_status=502)
    llm.queue_reply("Third time lucky.")
    _, done = await text_turn(ws, "hi")
    assert done["status"] == "completed" and done["text"] == "Third time lucky."
    assert len(llm.chat_requests(mem0=False)) == 3
    # an endpoint that is down: 3 tries, then a clear error and a failed response
    down = server_factory(None, llm_base_url="http://127.0.0.1:9/v1", llm_api_key="k")
    ws = await open_ws(down, persona="emma")
    await ws.wait_for("session.created")
    await ws.send({"type": "input_text", "text": "anyone there?"})
    err = await ws.wait_for("error", timeout=30)
    assert err["code"] == "llm_unreachable" and "could not be reached" in err["message"]
    assert (await ws.wait_for("response.done"))["status"] == "failed"


async def test_memory_search_runs_before_generation_and_add_after(
    server: ServerThread, llm: FakeOpenAI
):
    assert server.services.modules["memory"] == "ready"
    ws = await open_ws(server, persona="emma", token="hana")
    await ws.wait_for("session.created")
    llm.queue_reply("Lovely, hiking is great.")
    await text_turn(ws, "I love hiking in the Alps.")
    await server.call(server.services.memory.drain())
    llm.queue_reply("You love hiking!")
    await text_turn(ws, "What do I love doing?")
    reqs = llm.requests.snapshot()
    persona_calls = [r for r in reqs if r["kind"] == "chat" and r["mem0"] is None]
    embeds = [r for r in reqs if r["kind"] == "embeddings"]
    # the second turn: a memory search (embedding) happened before its generation call ...
    second_gen = persona_calls[-1]
    assert any(e["t"] < second_gen["t"] for e in embeds)
    # ... and what mem0 stored from turn one reached the persona's prompt
    assert "hiking" in second_gen["body"]["messages"][0]["content"].split("remember")[-1]
    # the add ran in the background after the first reply (a mem0 chat call exists)
    assert llm.chat_requests(mem0=True)


async def test_users_cannot_read_each_others_sessions(server: ServerThread, llm: FakeOpenAI):
    ws = await open_ws(server, persona="emma", token="ivy")
    sid = (await ws.wait_for("session.created"))["session"]["id"]
    llm.queue_reply("ok")
    await text_turn(ws, "secret plans")
    async with httpx.AsyncClient(base_url=server.url) as http:
        own = await http.get("/v1/sessions", headers={"Authorization": "Bearer ivy"})
        assert [s["id"] for s in own.json()["sessions"]] == [sid]
        other = await http.get("/v1/sessions", headers={"Authorization": "Bearer jack"})
        assert other.json()["sessions"] == []
        assert (await http.get(f"/v1/sessions/{sid}?token=jack")).status_code == 404
        r = await http.get(f"/v1/sessions/{sid}/messages?token=jack")
        assert r.status_code == 404
        assert (await http.get(f"/v1/sessions/{sid}?token=ivy")).status_code == 200


async def test_turns_of_many_sessions_share_the_llm_connections(server_factory, llm: FakeOpenAI):
    """One connection pool per process: 3 sessions x 3 turns at once need at most 3 TCP
    connections to the model (one per stream in flight), not one per turn or per session."""
    srv = server_factory(llm, memory_enabled=False)  # mem0's own calls would connect too

    async def session(i: int) -> list[str]:
        ws = await open_ws(srv, persona="emma", token=f"pool{i}")
        await ws.wait_for("session.created")
        texts = [(await text_turn(ws, f"turn {t}"))[1]["text"] for t in range(3)]
        await ws.conn.close()
        return texts

    replies = await asyncio.gather(*(session(i) for i in range(3)))
    assert all(len(r) == 3 and all(r) for r in replies)
    assert len(llm.chat_requests()) == 9
    assert 1 <= len(llm.nodelay) <= 3


async def test_flush_cadence_joins_tokens_keeps_the_text_and_stops_at_a_cancel(
    server_factory, llm: FakeOpenAI
):
    """STREAM_FLUSH_MS: the first delta is the first token alone, later deltas carry several
    tokens and join into exactly the model's text; a cancel stops the text at once; a reply
    spoken aloud keeps one delta per token."""
    srv = server_factory(llm, memory_enabled=False, stream_flush_ms=100, tts_provider="espeak")
    ws = await open_ws(srv, persona="emma", token="flush")
    await ws.wait_for("session.created")
    tokens = [f"t{i} " for i in range(30)]
    llm.queue_reply(tokens=tokens, token_ms=10)
    deltas, done = await text_turn(ws, "hello")
    assert deltas[0] == "t0 " and "".join(deltas) == "".join(tokens) == done["text"]
    assert len(deltas) <= 8  # ~300 ms of tokens at most every 100 ms (30 unjoined)

    llm.queue_reply(tokens=[f"w{i} " for i in range(200)], token_ms=10)
    done = await cancel_after(ws, 3)
    sent = [e["delta"] for e in ws.of_type("response.text.delta")][len(deltas) :]
    assert done["text"] == "".join(sent) and len(sent) < len(done["text"].split()) < 200

    await ws.send({"type": "session.update", "session": {"output_audio": "pcm16"}})
    await ws.wait_for("session.updated")
    llm.queue_reply(tokens=["Said ", "one ", "by ", "one."], token_ms=10)
    spoken, done = await text_turn(ws, "say it")
    assert spoken == ["Said ", "one ", "by ", "one."] and done["status"] == "completed"
    await ws.conn.close()
