"""Screen task actions follow the approval gate (issue 20): a previewed action is a pending
approval of the user, asked with approval.request; approval.response approves or declines it
like task.confirm, every other answer settles it too, and GET /v1/approvals lists them all."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from tests.e2e.test_protocol_dmp import DMP, connected
from tests.e2e.test_tasks_rest import ANSWERS, HOME, LIST, MARKERS, client, start
from tests.fakes.openai_server import FakeOpenAI
from tests.server_harness import ServerThread, WsClient, open_ws
from tests.tasks.screens import ScreenVLM


def task_server(factory: Callable[..., ServerThread], llm: FakeOpenAI, **over: Any) -> ServerThread:
    llm.set_default(ScreenVLM(MARKERS, {k: list(v) for k, v in ANSWERS.items()}))
    return factory(llm, task_screen_wait_s=2.0, **over)


async def approval(http: httpx.AsyncClient, call_id: str) -> dict[str, Any]:
    r = await http.get(f"/v1/approvals/{call_id}")
    assert r.status_code == 200, r.text
    return r.json()


async def asked(ws: WsClient, action_id: str) -> dict[str, Any]:
    req = await ws.wait_for("approval.request", call_id=action_id)
    assert req["name"] == "screen_task.click" and req["question"]
    return req


async def test_approval_response_confirms_or_declines_a_task_action(
    server_factory: Callable[..., ServerThread], llm: FakeOpenAI
) -> None:
    srv = task_server(server_factory, llm)
    http = await client(srv, "gate-user")
    ws = await open_ws(srv, persona="emma", token="gate-user")
    await ws.wait_for("session.created")
    t = await start(http)
    task_id, first = t["task_id"], t["next_action_preview"]["action_id"]
    # the preview is asked as an approval, stored pending before it is sent
    req = await asked(ws, first)
    assert req["arguments"] | {"task_id": task_id} == {
        "task_id": task_id,
        "step": 1,
        "target": "Menu",
        "coordinates": {"x": 100, "y": 200},
        "text": "",
        "final": False,
    }
    assert "Menu" in req["description"]
    pending = (await http.get("/v1/approvals", params={"status": "pending"})).json()
    assert [a["call_id"] for a in pending["approvals"]] == [first]
    # approve: the same as task.confirm (the client is told to execute it)
    await ws.send({"type": "approval.response", "call_id": first, "decision": "approve"})
    go = await ws.wait_for("task.action_execute", action_id=first)
    assert go["task_id"] == task_id and go["target"] == "Menu"
    got = await approval(http, first)
    assert got["status"] == "approved" and got["decided_at"] is not None
    assert got["session_id"] == f"task:{task_id}"
    await ws.send({"type": "task.executed", "task_id": task_id, "action_id": first})
    await ws.send_raw(b"\x02" + LIST)
    res = await ws.wait_for("task.action_result", action_id=first)
    assert res["status"] == "success"
    # the next step: reject declines it (withdrawn, the task paused), with the reason stored
    second = (await ws.wait_for("task.action_preview", target="Big Mac"))["action_id"]
    await asked(ws, second)
    await ws.send(
        {
            "type": "approval.response",
            "call_id": second,
            "decision": "reject",
            "message": "not that one",
        }
    )
    res = await ws.wait_for("task.action_result", action_id=second)
    assert res["status"] == "failed" and res["reason"] == "declined"
    assert (await ws.wait_for("task.updated", status="paused"))["step"] == 1
    got = await approval(http, second)
    assert got["status"] == "rejected" and got["message"] == "not that one"
    # a second answer to a settled one, or an edit, is an error; the socket stays open
    await ws.send({"type": "approval.response", "call_id": second, "decision": "approve"})
    err = await ws.wait_for("error")
    assert err["code"] == "approval_not_pending" and err["fatal"] is False
    # the other ways of answering settle the approval too: task.confirm ...
    await ws.send({"type": "task.control", "task_id": task_id, "command": "resume"})
    third = (await ws.wait_for("task.action_preview", target="Big Mac"))["action_id"]
    await asked(ws, third)
    # a pending one is asked again on the user's next socket
    ws2 = await open_ws(srv, persona="emma", token="gate-user")
    await ws2.wait_for("session.created")
    await asked(ws2, third)
    await ws2.conn.close()
    await ws.send(
        {"type": "approval.response", "call_id": third, "decision": "edit", "arguments": {}}
    )
    err = await ws.wait_for("error")
    assert err["code"] == "approval_not_pending" and "cannot be edited" in err["message"]
    await ws.send({"type": "task.confirm", "task_id": task_id, "action_id": third})
    await ws.wait_for("task.action_execute", action_id=third)
    assert (await approval(http, third))["status"] == "approved"
    # ... and the REST confirm (executed: false declines it)
    r = await http.post(f"/v1/tasks/{task_id}/actions/{third}/confirm", json={"executed": False})
    assert r.status_code == 200 and r.json()["task"]["status"] == "paused"
    listed = (await http.get("/v1/approvals")).json()["approvals"]
    assert [(a["call_id"], a["status"]) for a in listed] == [
        (third, "approved"),
        (second, "rejected"),
        (first, "approved"),
    ]
    # another user's view: none of them
    other = await client(srv, "someone-else")
    assert (await other.get(f"/v1/approvals/{first}")).status_code == 404
    assert (await other.get("/v1/approvals")).json() == {"approvals": []}
    await other.aclose()
    await ws.conn.close()
    await http.aclose()


async def test_unanswered_task_action_expires_like_the_gate(
    server_factory: Callable[..., ServerThread], llm: FakeOpenAI
) -> None:
    srv = task_server(server_factory, llm, approval_timeout_s=1.0)
    http = await client(srv, "slow-user")
    ws = await open_ws(srv, persona="emma", token="slow-user")
    await ws.wait_for("session.created")
    t = await start(http, HOME)
    action = t["next_action_preview"]["action_id"]
    await asked(ws, action)
    res = await ws.wait_for("task.action_result", action_id=action)
    assert res["status"] == "failed" and res["reason"] == "expired"
    await ws.wait_for("task.updated", status="paused")
    got = await approval(http, action)
    assert got["status"] == "expired" and "1 s" in got["message"]
    # a late answer is refused
    await ws.send({"type": "approval.response", "call_id": action, "decision": "approve"})
    assert (await ws.wait_for("error"))["code"] == "approval_not_pending"
    await ws.conn.close()
    await http.aclose()


async def test_a_dmp_client_answers_a_task_action_with_hitl_response(
    server_factory: Callable[..., ServerThread], llm: FakeOpenAI
) -> None:
    srv = task_server(server_factory, llm, **DMP)
    dmp = await connected(srv)
    await dmp.send_message("hi")  # a DMP session opens with its first turn
    await dmp.wait_for("stream_end", timeout=30)
    http = await client(srv, "default")
    t = await start(http)
    action = t["next_action_preview"]["action_id"]
    hitl = await dmp.wait_for("hitl_request", timeout=30)
    [req] = hitl["action_requests"]
    assert req["call_id"] == action and req["name"] == "screen_task.click"
    assert req["args"]["target"] == "Menu"
    await dmp.send({"type": "hitl_response", "decisions": [{"type": "approve"}]})
    # frames are handled in order: the answer to a second one shows the first was settled
    n = len(dmp.events)
    await dmp.send({"type": "hitl_response", "decisions": [{"type": "approve"}]})
    err = await dmp.wait_for("error", after=n)
    assert err["error"] == "1 decisions for 0 pending approvals"
    assert (await approval(http, action))["status"] == "approved"
    await dmp.close()
    await http.aclose()
