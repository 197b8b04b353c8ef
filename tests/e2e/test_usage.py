"""GET /v1/usage over a real server: all-time counters, today's bucket, reply latency per
day and per persona from the stored replies, range validation, and per-user isolation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx

from tests.fakes.openai_server import FakeOpenAI
from tests.server_harness import ServerThread, open_ws, text_turn


async def test_usage_has_daily_buckets_and_latency_per_day_and_persona(
    server: ServerThread, llm: FakeOpenAI
):
    ws = await open_ws(server, persona="이서아", token="dash")
    await ws.wait_for("session.created")
    for text in ("hello there", "tell me more"):
        llm.queue_reply("Sure, here is a reply.")
        _, done = await text_turn(ws, text)
        assert done["status"] == "completed"
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
