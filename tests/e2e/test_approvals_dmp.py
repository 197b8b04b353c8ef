"""Approvals and proactive turns as a DesktopMatePlus v1 client sees them (the bridge's
Python mirror, tests/dmp_client.py): hitl_request / hitl_response in their shape, a pending
approval that survives a reconnect and runs when approved there, and `proactive: true` on
every frame of a proactive turn (as the original backend's proactive service marks them)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import httpx

from tests.e2e.test_mcp_approval import alarms, mcp_server, session_closed
from tests.e2e.test_protocol_dmp import DMP, connected
from tests.fakes.openai_server import FakeOpenAI
from tests.server_harness import ServerThread

Factory = Callable[..., ServerThread]


async def test_hitl_request_survives_a_reconnect_and_runs_when_approved(
    tmp_path: Path, server_factory: Factory, llm: FakeOpenAI
) -> None:
    srv, effects = mcp_server(tmp_path, llm, server_factory, **DMP)
    client = await connected(srv)
    call = {"id": "call_1", "name": "weather__set_alarm", "arguments": {"time": "07:00"}}
    llm.queue_reply(tool_calls=[call])
    await client.send_message("wake me at 7")
    start = await client.wait_for("stream_start")
    sid = start["session_id"]
    hitl = await client.wait_for("hitl_request", timeout=30)
    call_id = hitl["action_requests"][0]["call_id"]
    assert {k: v for k, v in hitl.items() if k != "_t"} == {
        "type": "hitl_request",
        "id": None,
        "timestamp": None,
        "session_id": sid,
        "action_requests": [
            {
                "name": "weather__set_alarm",
                "args": {"time": "07:00"},
                "description": "Set an alarm on the user's phone.",
                "call_id": call_id,
            }
        ],
        "review_configs": [
            {
                "action_name": "weather__set_alarm",
                "allowed_decisions": ["approve", "edit", "reject"],
            }
        ],
    }
    # the persona asks aloud in the turn: a token and a spoken sentence
    asked = await client.wait_for("tts_chunk", timeout=30)
    first = asked["text"].strip()  # the first chunk is short (the engine's first words)
    assert first and "Before I do that".startswith(first) and asked["audio_base64"]
    # a malformed answer is an error; the approval still waits
    n = len(client.events)
    await client.send({"type": "hitl_response", "decisions": [{"type": "edit"}]})
    err = await client.wait_for("error", after=n)
    assert err["error"].startswith("Invalid hitl_response format")
    await client.close()
    await session_closed(srv, "default", sid)
    assert alarms(effects) == []

    client = await connected(srv)
    llm.queue_reply("Hi again.")
    llm.queue_reply("Done, it rings at seven.")
    n = len(client.events)
    await client.send_message("hi", session_id=sid)
    again = await client.wait_for("hitl_request", after=n, timeout=30)
    assert again["action_requests"][0]["call_id"] == call_id
    await client.wait_for("stream_end", after=n, content="Hi again.", timeout=30)
    too_many = [{"type": "approve"}, {"type": "approve"}]
    await client.send({"type": "hitl_response", "decisions": too_many})
    err = await client.wait_for("error", after=n)
    assert err["error"] == "2 decisions for 1 pending approvals"
    n = len(client.events)
    await client.send({"type": "hitl_response", "decisions": [{"type": "approve"}]})
    end = await client.wait_for(
        "stream_end", after=n, content="Done, it rings at seven.", timeout=30
    )
    assert end["session_id"] == sid and "proactive" not in end
    assert alarms(effects) == [{"tool": "set_alarm", "time": "07:00", "label": ""}]
    # a second answer for it: nothing is pending any more
    await client.send({"type": "hitl_response", "decisions": [{"type": "reject"}]})
    err = await client.wait_for("error", after=len(client.events) - 1)
    assert err["error"] == "1 decisions for 0 pending approvals"
    await client.close()


async def test_proactive_turn_frames_say_proactive(
    server_factory: Factory, llm: FakeOpenAI
) -> None:
    srv = server_factory(llm, proactive_tick_s=0.05, proactive_cooldown_s=0.0, **DMP)
    client = await connected(srv)
    llm.queue_reply("Hello!")
    plain = await client.turn("hello")
    assert all("proactive" not in e for e in plain.events)
    llm.queue_reply(tokens=["You have ", "new mail. ", "It is from Mina."])
    n = len(client.events)
    async with httpx.AsyncClient(base_url=srv.url) as http:
        r = await http.post(
            "/v1/proactive/trigger",
            json={"reason": "new mail from Mina"},
            headers={"Authorization": "Bearer default"},
        )
    assert r.status_code == 200, r.text
    end = await client.wait_for("stream_end", after=n, timeout=30)
    frames = [e for e in client.events[n:] if e["type"] != "ping"]
    frames = frames[: frames.index(end) + 1]
    kinds = [e["type"] for e in frames]
    assert kinds[0] == "stream_start" and "stream_token" in kinds and "tts_chunk" in kinds
    assert all(e.get("proactive") is True for e in frames), frames
    assert end["content"] == "You have new mail. It is from Mina."
    await asyncio.sleep(0)
    await client.close()
