"""An approval answered on another replica: two real server processes (REPLICA_MODE=multi)
on one MongoDB-wire store (mongoeco), each starting the real stdio MCP server of the tests
on one shared effects file. The turn asks on replica A; the user, also on replica B,
answers there. A's turn reads the store while it waits (APPROVAL_POLL_S), so it goes on
with the decision within seconds although APPROVAL_TIMEOUT_S is 120 s: it runs the call
(or tells the model it was refused), exactly once across the fleet, and B, which got the
answer, leaves the call to A (its log says so)."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from websockets.asyncio.client import connect

from server.store import new_id
from tests.agent.test_mcp import FAKE
from tests.e2e.test_crash import crash_llm, wire_mongo  # noqa: F401 (fixtures)
from tests.e2e.test_mcp_approval import alarms, last_tool_result
from tests.fakes.openai_server import FakeOpenAI
from tests.forked_server import ForkedServer, replica_fleet
from tests.server_harness import WsClient

pytestmark = pytest.mark.timeout(180)
USER = "two-devices"
WITHIN_S = 15.0  # the decision reaches the asking turn well before APPROVAL_TIMEOUT_S


@pytest.fixture(scope="module")
async def fleet(
    tmp_path_factory: pytest.TempPathFactory,
    crash_llm: FakeOpenAI,  # noqa: F811
    wire_mongo: str,  # noqa: F811
) -> AsyncIterator[tuple[ForkedServer, ForkedServer, Path]]:
    tmp = tmp_path_factory.mktemp("approval-fleet")
    effects = tmp / "effects.jsonl"  # what the MCP servers of both replicas did
    cfg = tmp / "mcp.json"
    server = {"command": sys.executable, "args": [FAKE, "stdio", str(effects)]}
    cfg.write_text(json.dumps({"mcpServers": {"weather": server}}))
    shared = {
        "MONGODB_URI": wire_mongo,
        "MONGODB_DB": f"approvals_{new_id()}",
        "LLM_BASE_URL": crash_llm.base_url,
        "LLM_API_KEY": "test-key",
        "LLM_MODEL": "fake-model",
        "LLM_TOOLS": "on",
        "MCP_CONFIG": str(cfg),
        "MCP_CONNECT_TIMEOUT_S": "60",
        "APPROVAL_TIMEOUT_S": "120",
        "APPROVAL_POLL_S": "1.0",
    }
    async with replica_fleet(tmp, shared) as (a, b):
        yield a, b, effects


async def open_ws(server: ForkedServer) -> WsClient:
    ws = WsClient(await connect(server.ws_url(token=USER, persona="emma"), open_timeout=10))
    await ws.wait_for("session.created")
    return ws


async def logged(server: ForkedServer, event: str, call_id: str) -> bool:
    """The replica logged ``event`` for the call (it logs right after the store answered)."""
    for _ in range(100):
        if any(
            e.get("event") == event and e.get("call_id") == call_id for e in server.log_events()
        ):
            return True
        await asyncio.sleep(0.1)
    return False


async def ask_on_a_answer_on_b(
    a: ForkedServer, b: ForkedServer, llm: FakeOpenAI, time_: str, answer: dict
) -> tuple[dict, float]:
    """A turn on A asks for weather__set_alarm; the user's socket on B (opened after, so
    the pending approval is asked there again) answers. The reply on A, and how long after
    the answer it came."""
    ws_a = await open_ws(a)
    call = {"id": f"call_{time_}", "name": "weather__set_alarm", "arguments": {"time": time_}}
    llm.queue_reply(tool_calls=[call])
    llm.queue_reply("Done, it is set." if answer["decision"] == "approve" else "Okay, I won't.")
    await ws_a.send({"type": "input_text", "text": f"wake me at {time_}"})
    req = await ws_a.wait_for("approval.request", timeout=60)
    ws_b = await open_ws(b)
    again = await ws_b.wait_for("approval.request", call_id=req["call_id"])
    await ws_b.send({"type": "approval.response", "call_id": again["call_id"]} | answer)
    t0 = time.monotonic()
    result = await ws_a.wait_for("response.tool_result", timeout=WITHIN_S)
    done = await ws_a.wait_for("response.done", timeout=WITHIN_S)
    took = time.monotonic() - t0
    assert done["status"] == "completed"
    # B, which got the answer, left the call to A (only after A could have claimed it)
    assert await logged(b, "approval_carried_elsewhere", req["call_id"])
    await ws_a.conn.close()
    await ws_b.conn.close()
    return result | {"reply": done["text"], "call_id": req["call_id"]}, took


async def test_an_answer_on_another_replica_reaches_the_asking_turn_at_once(
    fleet: tuple[ForkedServer, ForkedServer, Path],
    crash_llm: FakeOpenAI,  # noqa: F811
) -> None:
    a, b, effects = fleet
    crash_llm.clear()
    # approved on B: A's turn runs the call, once across both replicas' MCP servers
    got, took = await ask_on_a_answer_on_b(a, b, crash_llm, "07:00", {"decision": "approve"})
    assert got["ok"] and got["reply"].endswith("Say yes or no. Done, it is set.")
    assert took < WITHIN_S  # APPROVAL_TIMEOUT_S is 120 s
    print(f"\napproved on B, A's reply {took:.1f} s after the answer")
    assert [x["time"] for x in alarms(effects)] == ["07:00"]

    # refused on B: A's turn does not run it and the model reads the user's reason
    no = {"decision": "reject", "message": "I'm sleeping in."}
    got, took = await ask_on_a_answer_on_b(a, b, crash_llm, "05:00", no)
    assert not got["ok"] and got["reply"].endswith("Okay, I won't.")
    assert "I'm sleeping in." in last_tool_result(crash_llm)
    assert [x["time"] for x in alarms(effects)] == ["07:00"]
    print(f"\nrejected on B, A's reply {took:.1f} s after the answer")
