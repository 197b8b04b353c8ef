"""MCP tools in a turn, behind the user's approval: a real MCP server (stdio, the SDK's
MCPServer) started by the server from MCP_CONFIG, the fake LLM scripted to call its tools.
Approve, edit, reject (by voice-like text), expiry; a safe tool runs without asking."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from tests.agent.test_mcp import FAKE
from tests.fakes.openai_server import FakeOpenAI
from tests.server_harness import ServerThread, WsClient, open_ws


def mcp_server(tmp: Path, llm: FakeOpenAI, factory: Callable[..., ServerThread], **over: Any):
    effects = tmp / "effects.jsonl"
    cfg = tmp / "mcp.json"
    cfg.write_text(
        json.dumps(
            {
                "mcpServers": {
                    "weather": {
                        "command": sys.executable,
                        "args": [FAKE, "stdio", str(effects)],
                        "safeTools": ["get_forecast"],
                    }
                }
            }
        )
    )
    srv = factory(llm, mcp_config=cfg, mcp_connect_timeout_s=60, llm_tools="on", **over)
    return srv, effects


def alarms(effects: Path) -> list[dict[str, Any]]:
    if not effects.exists():
        return []
    return [json.loads(x) for x in effects.read_text().splitlines()]


def last_tool_result(llm: FakeOpenAI) -> str:
    msgs = llm.chat_requests(mem0=False)[-1]["body"]["messages"]
    return next(m["content"] for m in reversed(msgs) if m["role"] == "tool")


async def turn_with_call(ws: WsClient, llm: FakeOpenAI, args: dict[str, Any], text: str) -> dict:
    llm.queue_reply(tool_calls=[{"id": "call_1", "name": "weather__set_alarm", "arguments": args}])
    llm.queue_reply("Okay.")
    await ws.send({"type": "input_text", "text": text})
    return await ws.wait_for("approval.request", timeout=30)


async def test_approve_edit_reject_and_expiry(
    tmp_path: Path, server_factory: Callable[..., ServerThread], llm: FakeOpenAI
) -> None:
    srv, effects = mcp_server(tmp_path, llm, server_factory, approval_timeout_s=2.0)
    ws = await open_ws(srv, persona="emma", token="mcp-user")
    await ws.wait_for("session.created")

    # a safe MCP tool runs at once
    llm.queue_reply(tool_calls=[{"name": "weather__get_forecast", "arguments": {"city": "Seoul"}}])
    llm.queue_reply("Sunny tomorrow.")
    await ws.send({"type": "input_text", "text": "weather in Seoul?"})
    res = await ws.wait_for("response.tool_result", timeout=30)
    assert res["ok"] and "sunny, 21 C" in res["summary"]
    await ws.wait_for("response.done")

    # approve: the alarm is set
    req = await turn_with_call(ws, llm, {"time": "07:00"}, "set an alarm for 7")
    assert req["name"] == "weather__set_alarm" and req["arguments"] == {"time": "07:00"}
    assert req["description"] == "Set an alarm on the user's phone."
    assert alarms(effects) == []  # nothing happens before the decision
    await ws.send({"type": "approval.response", "call_id": req["call_id"], "decision": "approve"})
    res = await ws.wait_for("response.tool_result", timeout=30)
    assert res["ok"]
    await ws.wait_for("response.done")
    assert [a["time"] for a in alarms(effects)] == ["07:00"]

    # edit: the user's arguments run
    req = await turn_with_call(ws, llm, {"time": "06:00"}, "set one for 6")
    await ws.send(
        {
            "type": "approval.response",
            "call_id": req["call_id"],
            "decision": "edit",
            "arguments": {"time": "06:30", "label": "gym"},
        }
    )
    await ws.wait_for("response.done", timeout=30)
    assert alarms(effects)[-1] == {"tool": "set_alarm", "time": "06:30", "label": "gym"}

    # reject by a short typed answer: not run, the model is told
    req = await turn_with_call(ws, llm, {"time": "05:00"}, "and one for 5")
    await ws.send({"type": "input_text", "text": "아니, 하지 마"})
    await ws.wait_for("response.done", timeout=30)
    assert len(alarms(effects)) == 2
    assert "did not approve" in last_tool_result(llm) and "rejected" in last_tool_result(llm)

    # expiry: not run, rejected as expired, the model is told
    req = await turn_with_call(ws, llm, {"time": "04:00"}, "and one for 4")
    await ws.wait_for("response.done", timeout=30)
    assert len(alarms(effects)) == 2
    assert "expired" in last_tool_result(llm)

    async with httpx.AsyncClient(base_url=srv.url) as http:
        got = (await http.get("/v1/approvals", headers={"Authorization": "Bearer mcp-user"})).json()
    assert [a["status"] for a in got["approvals"]] == ["expired", "rejected", "edited", "approved"]
    await ws.conn.close()


async def session_closed(srv: ServerThread, user: str, session_id: str) -> None:
    """The server has let the first socket's session go (its turn ended with it)."""
    for _ in range(200):
        rec = await srv.call(srv.services.store.get_session(user, session_id))
        if rec is not None and rec.status == "paused":
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the session never closed")


async def test_reconnect_while_pending_then_approve_runs_the_call_and_continues(
    tmp_path: Path, server_factory: Callable[..., ServerThread], llm: FakeOpenAI
) -> None:
    srv, effects = mcp_server(tmp_path, llm, server_factory)
    ws = await open_ws(srv, persona="emma", token="late")
    sid = (await ws.wait_for("session.created"))["session"]["id"]
    call = {"id": "call_1", "name": "weather__set_alarm", "arguments": {"time": "07:00"}}
    llm.queue_reply(tool_calls=[call])
    await ws.send({"type": "input_text", "text": "wake me at 7"})
    req = await ws.wait_for("approval.request", timeout=30)
    # the persona asks aloud: the question is part of the reply's text (and its speech)
    assert req["question"].startswith("Before I do that, I need your okay: Set an alarm")
    assert "time: 07:00" in req["question"]
    said = await ws.wait_for("response.text.delta")
    assert said["delta"] == req["question"] + " "  # the reply goes on after it
    await ws.conn.close()  # the turn that asked ends with its socket
    await session_closed(srv, "late", sid)
    assert alarms(effects) == []

    llm.queue_reply("Done, your alarm rings at seven.")  # the continuation's answer
    ws = await open_ws(srv, persona="emma", token="late", session_id=sid)
    await ws.wait_for("session.created")
    again = await ws.wait_for("approval.request")
    assert again["call_id"] == req["call_id"] and again["arguments"] == {"time": "07:00"}
    asked = await ws.wait_for("response.done")  # the question said again, as a line
    assert asked["text"] == again["question"]
    await ws.send({"type": "approval.response", "call_id": req["call_id"], "decision": "approve"})
    created = await ws.wait_for("response.created", timeout=30)
    assert created["continues"] == req["call_id"]
    result = await ws.wait_for("response.tool_result", timeout=30)
    assert result["ok"] and result["call_id"] == req["call_id"]
    done = await ws.wait_for("response.done", response_id=created["response_id"], timeout=30)
    assert done["status"] == "completed" and done["text"] == "Done, your alarm rings at seven."
    assert alarms(effects) == [{"tool": "set_alarm", "time": "07:00", "label": ""}]
    # the model answered after the call and its result
    msgs = llm.chat_requests(mem0=False)[-1]["body"]["messages"]
    assert msgs[-2]["tool_calls"][0]["function"]["name"] == "weather__set_alarm"
    assert msgs[-1]["role"] == "tool" and "alarm set for 07:00" in msgs[-1]["content"]
    async with httpx.AsyncClient(base_url=srv.url, headers={"Authorization": "Bearer late"}) as h:
        stored = (await h.get(f"/v1/sessions/{sid}/messages")).json()["messages"]
        got = (await h.get(f"/v1/approvals/{req['call_id']}")).json()
    lines = [(m["role"], m["content"]) for m in stored]
    assert lines[-3][0] == "system" and lines[-3][1].startswith("[approval approved]")
    assert lines[-2] == (
        "system",
        "[tool weather__set_alarm] weather__set_alarm: alarm set for 07:00",
    )
    assert lines[-1] == ("assistant", "Done, your alarm rings at seven.")
    assert got["status"] == "approved"
    # the next turn's model sees the continued turn in its history
    llm.queue_reply("You're welcome.")
    await ws.send({"type": "input_text", "text": "thanks!"})
    await ws.wait_for("response.done", timeout=30, text="You're welcome.")
    history = llm.chat_requests(mem0=False)[-1]["body"]["messages"]
    assert any(m.get("content") == "Done, your alarm rings at seven." for m in history)
    await ws.conn.close()
