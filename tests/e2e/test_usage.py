"""GET /v1/usage over a real server: all-time counters, today's bucket, reply latency per
day and per persona from the stored replies, range validation, and per-user isolation."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import httpx

from server.providers.usage_meter import prompt_chars
from tests.fakes.openai_server import FakeOpenAI
from tests.server_harness import ServerThread, open_ws, text_turn


async def test_usage_has_daily_buckets_and_latency_per_day_and_persona(
    server: ServerThread, llm: FakeOpenAI
):
    ws = await open_ws(server, persona="이서아", token="dash")
    await ws.wait_for("session.created")
    for n, text in enumerate(("hello there", "tell me more"), 1):
        llm.queue_reply("Sure, here is a reply.")
        _, done = await text_turn(ws, text)
        assert done["status"] == "completed"
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
            now = (await http.get("/v1/usage", params={"token": "dash"})).json()["usage"]
        assert now["llm_calls"] == n  # counted once response.done is out: stored with the reply
    await ws.conn.close()
    today = datetime.now(UTC).date()
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        r = await http.get("/v1/usage", params={"token": "dash"})
        other = await http.get("/v1/usage", params={"token": "someone-else"})
        week = await http.get(
            "/v1/usage",
            params={"token": "dash", "from": (today - timedelta(days=6)).isoformat()},
        )
        reversed_range = await http.get(
            "/v1/usage", params={"token": "dash", "from": "2026-02-01", "to": "2026-01-01"}
        )
        too_long = await http.get(
            "/v1/usage", params={"token": "dash", "from": "2020-01-01", "to": "2026-01-01"}
        )
        not_a_date = await http.get("/v1/usage", params={"token": "dash", "from": "yesterday"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["usage"]["llm_calls"] == 2
    assert len(body["days"]) == 30 and body["days"][-1]["day"] == today.isoformat()
    bucket = body["days"][-1]
    assert bucket["counters"]["llm_calls"] == 2
    assert bucket["counters"]["output_tokens"] == body["usage"]["output_tokens"] > 0
    assert bucket["latency"]["ttft_ms"]["n"] == 2 and bucket["latency"]["ttft_ms"]["p50"] >= 0
    assert all(d["counters"] == {} for d in body["days"][:-1])
    assert body["range_totals"]["llm_calls"] == 2
    assert body["personas"]["이서아"]["replies"] == 2
    assert body["personas"]["이서아"]["latency"]["ttft_ms"]["n"] == 2

    assert other.json()["usage"] == {} and other.json()["personas"] == {}
    assert week.status_code == 200 and len(week.json()["days"]) == 7
    assert reversed_range.status_code == 400 and "after" in reversed_range.json()["detail"]
    assert too_long.status_code == 400 and "366" in too_long.json()["detail"]
    assert not_a_date.status_code == 422


async def test_usage_counts_cut_replies_and_memorys_own_calls_as_the_model_received_them(
    server_factory: Callable[..., ServerThread], llm: FakeOpenAI
):
    """Compared with what the fake model server received and would have billed: a finished
    reply exactly; a reply cut by a cancel with its prompt estimated at the ratio the model
    reported before and its output as the chunks that reached the server; mem0's
    extraction and embedding calls exactly, under their own counters."""
    llm.clear()
    srv = server_factory(llm)  # a fresh process: its token ratio comes from this test only
    ws = await open_ws(srv, persona="emma", token="meter")
    await ws.wait_for("session.created")
    llm.queue_reply("Lovely, hiking is great.")
    await text_turn(ws, "I love hiking in the Alps with my sister.")
    llm.queue_reply(tokens=[f"w{i} " for i in range(200)], token_ms=20)
    await ws.send({"type": "input_text", "text": "Tell me a long story about mountains"})
    for _ in range(5):
        await ws.wait_for("response.text.delta")
    await ws.send({"type": "response.cancel"})
    done = await ws.wait_for("response.done")
    assert done["status"] == "cancelled"
    deltas = ws.of_type("response.text.delta")
    received = len([d for d in deltas if d["response_id"] == done["response_id"]])
    await srv.call(srv.services.memory.drain())
    await ws.conn.close()

    first, cut = llm.chat_requests(mem0=False)
    assert first["completed"] and not cut["completed"]
    ratio = first["usage"]["prompt_tokens"] / prompt_chars(first["body"]["messages"])
    cut_in = round(prompt_chars(cut["body"]["messages"]) * ratio)
    memory_calls = llm.chat_requests(mem0=True)
    embeds = [r for r in llm.requests.snapshot() if r["kind"] == "embeddings"]
    assert memory_calls and embeds  # extraction after each reply, searches before each
    expected = {
        "llm_calls": 2,
        "interrupted_replies": 1,
        "memory_llm_calls": len(memory_calls),
        "memory_input_tokens": sum(r["usage"]["prompt_tokens"] for r in memory_calls),
        "memory_output_tokens": sum(r["usage"]["completion_tokens"] for r in memory_calls),
        "embedding_calls": len(embeds),
        "embedding_tokens": sum(sum(len(t.split()) for t in r["inputs"]) for r in embeds),
    }
    async with httpx.AsyncClient(base_url=srv.url, timeout=30) as http:
        for _ in range(100):  # mem0's counts are written in the background
            usage = (await http.get("/v1/usage", params={"token": "meter"})).json()["usage"]
            if all(usage.get(k) == v for k, v in expected.items()):
                break
            await asyncio.sleep(0.05)
    assert {k: usage.get(k) for k in expected} == expected
    # the cut reply: its prompt at the learned ratio (close to what the model counted), its
    # output as many tokens as chunks reached the server (at least what the client got)
    assert abs(cut_in - cut["usage"]["prompt_tokens"]) <= 0.15 * cut["usage"]["prompt_tokens"]
    assert usage["input_tokens"] == first["usage"]["prompt_tokens"] + cut_in
    cut_out = usage["output_tokens"] - first["usage"]["completion_tokens"]
    assert received <= cut_out <= cut["tokens_sent"] < 200
    assert usage["estimated_tokens"] == cut_in + cut_out
    assert done["usage"] == {"input_tokens": usage["input_tokens"] - first["usage"]["prompt_tokens"],
                             "output_tokens": cut_out}  # fmt: skip
