"""Model services fail honestly (issue 11, item 9): a language model that hangs, stalls,
breaks its stream or sends garbage gets an accurate error within the configured timeouts,
the partial reply is stored as interrupted, and the next turn works without a restart."""

from __future__ import annotations

import asyncio
import time

import httpx

from tests.fakes.openai_server import FakeOpenAI
from tests.server_harness import ServerThread, WsClient, open_ws, text_turn

FIRST_S, IDLE_S = 1.0, 0.6


def faulty_server(server_factory, llm: FakeOpenAI, **over) -> ServerThread:
    return server_factory(
        llm, llm_first_token_timeout_s=FIRST_S, llm_stream_idle_timeout_s=IDLE_S, **over
    )


async def failed_turn(ws: WsClient, text: str) -> tuple[dict, dict, float]:
    """Send a turn expected to fail: its error, its response.done and the time to the error."""
    t0 = time.monotonic()
    await ws.send({"type": "input_text", "text": text})
    created = await ws.wait_for("response.created")
    err = await ws.wait_for("error", timeout=30)
    elapsed = time.monotonic() - t0
    done = await ws.wait_for("response.done", response_id=created["response_id"])
    assert done["status"] == "failed" and err["fatal"] is False
    return err, done, elapsed


async def stored(server: ServerThread, user: str, sid: str) -> list[dict]:
    async with httpx.AsyncClient(base_url=server.url) as http:
        r = await http.get(
            f"/v1/sessions/{sid}/messages", headers={"Authorization": f"Bearer {user}"}
        )
    return r.json()["messages"]


async def recovers(ws: WsClient, llm: FakeOpenAI, n: int) -> None:
    llm.queue_reply(f"Back again {n}.")
    _, done = await text_turn(ws, f"are you there {n}?")
    assert done["status"] == "completed" and done["text"] == f"Back again {n}."


async def test_a_model_that_never_answers_times_out_then_the_next_turn_works(
    server_factory, llm: FakeOpenAI
):
    server = faulty_server(server_factory, llm)
    ws = await open_ws(server, persona="emma", token="hang")
    created = await ws.wait_for("session.created")
    llm.queue_reply("never sent", fault="hang_headers")
    err, done, elapsed = await failed_turn(ws, "hello?")
    assert err["code"] == "llm_timeout" and "no reply within 1 s" in err["message"]
    assert FIRST_S <= elapsed < FIRST_S + 3  # not 3 tries x LLM_TIMEOUT_S
    assert done["text"] == ""
    await recovers(ws, llm, 1)
    for _ in range(100):  # until the reply is stored (response.done may come first)
        msgs = await stored(server, "hang", created["session"]["id"])
        if len(msgs) == 3:
            break
        await asyncio.sleep(0.05)
    assert [m["role"] for m in msgs] == ["user", "user", "assistant"]


async def test_a_stream_that_stalls_or_breaks_is_kept_as_interrupted(
    server_factory, llm: FakeOpenAI
):
    server = faulty_server(server_factory, llm)
    ws = await open_ws(server, persona="emma", token="stall")
    created = await ws.wait_for("session.created")
    sid = created["session"]["id"]
    for n, (fault, words) in enumerate(
        [("hang", "nothing arrived for 0.6 s"), ("break", "the connection broke")]
    ):
        llm.queue_reply(tokens=["Once ", "upon ", "a ", "time."], fault=fault, fault_after=2)
        err, done, elapsed = await failed_turn(ws, f"tell me a story {n}")
        assert err["code"] == "llm_interrupted", err
        assert "stopped mid-reply" in err["message"] and words in err["message"]
        assert done["text"] == "Once upon "
        if fault == "hang":
            assert IDLE_S <= elapsed < IDLE_S + 3
        for _ in range(100):  # until the reply is stored (response.done may come first)
            last = (await stored(server, "stall", sid))[-1]
            if last["role"] == "assistant":
                break
            await asyncio.sleep(0.05)
        assert last["role"] == "assistant" and last["content"] == "Once upon "
        assert last["interrupted"] is True  # not stored as a complete reply
        await recovers(ws, llm, n)
        # the model saw the partial reply in its history, as the transcript has it
        history = [m["content"] for m in llm.chat_requests(mem0=False)[-1]["body"]["messages"]]
        assert "Once upon " in history or "Once upon" in history


async def test_garbage_sse_is_an_invalid_response_not_a_server_error(
    server_factory, llm: FakeOpenAI
):
    server = faulty_server(server_factory, llm)
    ws = await open_ws(server, persona="emma", token="garbage")
    await ws.wait_for("session.created")
    llm.queue_reply(tokens=["Hi ", "there."], fault="garbage", fault_after=1)
    err, _, _ = await failed_turn(ws, "hi")
    assert err["code"] == "llm_invalid_response" and "invalid response" in err["message"]
    await recovers(ws, llm, 0)


async def test_unreachable_only_when_it_was(server_factory, llm: FakeOpenAI):
    down = server_factory(None, llm_base_url="http://127.0.0.1:9/v1", llm_api_key="k")
    ws = await open_ws(down, persona="emma")
    await ws.wait_for("session.created")
    err, _, _ = await failed_turn(ws, "anyone there?")
    assert err["code"] == "llm_unreachable" and "could not be reached" in err["message"]


async def test_a_hanging_embedding_endpoint_does_not_hold_the_reply(
    server_factory, llm: FakeOpenAI
):
    server = faulty_server(server_factory, llm, memory_search_timeout_s=0.5)
    ws = await open_ws(server, persona="emma", token="embed")
    await ws.wait_for("session.created")
    llm.embeddings_answer.clear()
    try:
        llm.queue_reply("Hello without memories.")
        t0 = time.monotonic()
        _, done = await text_turn(ws, "hi")
        assert done["status"] == "completed" and done["text"] == "Hello without memories."
        assert time.monotonic() - t0 < 5
    finally:
        llm.embeddings_answer.set()
