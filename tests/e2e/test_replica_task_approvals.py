"""A screen task's preview waiting for the user's answer when the session moves to another
replica: two real server processes (REPLICA_MODE=multi) on one MongoDB-wire store
(mongoeco). The task starts on A and its first action is asked there; the user resumes the
session on B (A ends it within SESSION_TAKEOVER_CHECK_S). A lets go of the waiting task, B
picks it up from the store and asks again: the answer given on B is carried out on B, once
(docs/protocol.md, "Screen task approvals across replicas"); unanswered, B expires it at
its stored time and the task is paused, stored and told on B; if nobody picks it up, A
expires it TASK_EXPIRY_GRACE_S later."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect

from server.store import new_id
from server.store.base import CONSENT_ITEMS
from tests.e2e.test_crash import Crashable, crash_llm, wire_mongo  # noqa: F401 (fixtures)
from tests.e2e.test_replica_takeover import closed_with
from tests.e2e.test_tasks_rest import ANSWERS, BODY, HOME, LIST, MARKERS, b64
from tests.fakes.openai_server import FakeOpenAI, Reply
from tests.forked_server import ForkedServer, replica_fleet
from tests.server_harness import WsClient
from tests.tasks.screens import ScreenVLM

pytestmark = pytest.mark.timeout(180)
TIMEOUT_S = 8.0  # APPROVAL_TIMEOUT_S: the move takes under 2 s
READING_MS = 4000  # a slow VLM reading: the session moves while it runs
# TASK_EXPIRY_GRACE_S (10 s by default): A's backstop for a task nobody picked up. Short, so
# the test of the backstop waits 2 s past the expiry, not 10; still long enough that when B
# picks a task up, B (expiring it at its stored time) is first, as the tests of B expect
GRACE_S = 2.0


@pytest.fixture(scope="module")
async def fleet(
    tmp_path_factory: pytest.TempPathFactory,
    crash_llm: FakeOpenAI,  # noqa: F811
    wire_mongo: str,  # noqa: F811
) -> AsyncIterator[tuple[ForkedServer, ForkedServer]]:
    crash_llm.set_default(ScreenVLM(MARKERS, {k: list(v) for k, v in ANSWERS.items()}))
    tmp = tmp_path_factory.mktemp("task-fleet")
    shared = {
        "MONGODB_URI": wire_mongo,
        "MONGODB_DB": f"tasks_{new_id()}",
        "LLM_BASE_URL": crash_llm.base_url,
        "LLM_API_KEY": "test-key",
        "LLM_MODEL": "fake-model",
        "APPROVAL_TIMEOUT_S": str(TIMEOUT_S),
        "SESSION_TAKEOVER_CHECK_S": "0.25",
        "TASK_SCREEN_WAIT_S": "2",
        "TASK_EXPIRY_GRACE_S": str(GRACE_S),
    }
    async with replica_fleet(tmp, shared) as (a, b):
        yield a, b


def http_for(server: ForkedServer, user: str) -> httpx.AsyncClient:
    auth = {"Authorization": f"Bearer {user}"}
    return httpx.AsyncClient(base_url=server.url, headers=auth, timeout=20)


async def open_ws(server: ForkedServer, user: str, **params: str) -> WsClient:
    ws = WsClient(await connect(server.ws_url(token=user, persona="emma", **params)))
    await ws.wait_for("session.created")
    return ws


async def started_on(
    server: ForkedServer, user: str, **body: str
) -> tuple[WsClient, str, dict[str, Any]]:
    """The user's consent, a socket on ``server`` and a task started there (``body`` added
    to the request): the socket, its session id and the task as the start answered."""
    async with http_for(server, user) as http:
        consent = {"items": dict.fromkeys(CONSENT_ITEMS, True)}
        assert (await http.post("/v1/users/consent", json=consent)).status_code == 200
        ws = await open_ws(server, user)
        r = await http.post("/v1/tasks", json=BODY | body)
        assert r.status_code == 201, r.text
    return ws, ws.events[0]["session"]["id"], r.json()


async def asked_on(server: ForkedServer, user: str) -> tuple[WsClient, str, str, str]:
    """A task started on ``server`` with its first action asked: the socket, its session
    id, the task and the action."""
    ws, sid, task = await started_on(server, user, screenshot=b64(HOME))
    action = task["next_action_preview"]["action_id"]
    await ws.wait_for("approval.request", call_id=action)
    return ws, sid, task["task_id"], action


async def asked_on_a_moved_to_b(
    a: ForkedServer, b: ForkedServer, user: str
) -> tuple[WsClient, httpx.AsyncClient, str, str]:
    """A task started on A, its first action asked there; the session resumed on B (ended
    on A) and the action asked again on B. B's socket, a REST client on B, task and action."""
    on_a, sid, task_id, action = await asked_on(a, user)
    on_b = await open_ws(b, user, session_id=sid)
    taken = await on_a.wait_for("error", timeout=5)
    assert taken["code"] == "session_taken_over"
    assert await closed_with(on_a) == 4410
    again = await on_b.wait_for("approval.request", call_id=action, timeout=5)
    assert again["name"] == "screen_task.click" and again["arguments"]["target"] == "Menu"
    return on_b, http_for(b, user), task_id, action


def logged(server: ForkedServer, event: str, **match: Any) -> list[dict[str, Any]]:
    return [
        e
        for e in server.log_events()
        if e.get("event") == event and all(e.get(k) == v for k, v in match.items())
    ]


async def test_a_preview_asked_on_a_is_answered_and_carried_out_on_b(
    fleet: tuple[ForkedServer, ForkedServer],
) -> None:
    a, b = fleet
    ws, http, task_id, action = await asked_on_a_moved_to_b(a, b, "moving-user")
    await ws.send({"type": "approval.response", "call_id": action, "decision": "approve"})
    go = await ws.wait_for("task.action_execute", action_id=action)
    assert go["target"] == "Menu"
    await ws.send({"type": "task.executed", "task_id": task_id, "action_id": action})
    await ws.send_raw(b"\x02" + LIST)
    res = await ws.wait_for("task.action_result", action_id=action)
    assert res["status"] == "success"
    second = (await ws.wait_for("task.action_preview", target="Big Mac"))["action_id"]
    assert (await http.get(f"/v1/approvals/{action}")).json()["status"] == "approved"
    assert logged(a, "task_released", task_id=task_id)
    assert logged(b, "task_adopted", task_id=task_id)

    # a second device on A is asked the next step too; a yes on B and then one on A: the
    # action is carried out once (B), A refuses clearly, for the old step as well
    other = await open_ws(a, "moving-user")
    await other.wait_for("approval.request", call_id=second)
    await ws.send({"type": "task.confirm", "task_id": task_id, "action_id": second})
    await ws.wait_for("task.action_execute", action_id=second)
    for old in (second, action):
        await other.send({"type": "task.confirm", "task_id": task_id, "action_id": old})
        err = await other.wait_for("error")
        assert err["code"] == "not_pending" and err["fatal"] is False, err
    assert "already answered (approved)" in other.events[-2]["message"]
    assert not [e for e in other.events if e["type"] == "task.action_execute"]
    actions = (await http.get(f"/v1/tasks/{task_id}")).json()["actions"]
    assert [(x["action_id"], x["status"]) for x in actions] == [
        (action, "success"),
        (second, "pending"),  # approved, executing on B's client
    ]
    await other.conn.close()
    await ws.conn.close()
    await http.aclose()


async def test_unanswered_after_the_move_it_expires_on_b(
    fleet: tuple[ForkedServer, ForkedServer],
) -> None:
    a, b = fleet
    ws, http, task_id, action = await asked_on_a_moved_to_b(a, b, "silent-user")
    res = await ws.wait_for("task.action_result", action_id=action, timeout=TIMEOUT_S + 5)
    assert res["status"] == "failed" and res["reason"] == "expired"
    await ws.wait_for("task.updated", status="paused")
    got = (await http.get(f"/v1/approvals/{action}")).json()
    assert got["status"] == "expired"
    task = (await http.get(f"/v1/tasks/{task_id}")).json()
    assert task["status"] == "paused"
    # a late answer on B is refused, clearly; the socket stays open
    await ws.send({"type": "approval.response", "call_id": action, "decision": "approve"})
    err = await ws.wait_for("error")
    assert err["code"] == "approval_not_pending" and err["fatal"] is False
    assert len(logged(b, "task_action_expired", task_id=task_id)) == 1
    assert not logged(a, "task_action_expired", task_id=task_id)
    await ws.conn.close()
    await http.aclose()


async def test_two_devices_on_two_servers_both_hear_the_expiry(
    fleet: tuple[ForkedServer, ForkedServer],
) -> None:
    """After the move a second device opens on A, which picks the task up as well: both
    devices are asked; unanswered, one server settles the expiry and the other follows the
    store, so both devices get the action's end and the paused task, once each."""
    a, b = fleet
    ws, http, task_id, action = await asked_on_a_moved_to_b(a, b, "two-device-user")
    other = await open_ws(a, "two-device-user")
    await other.wait_for("approval.request", call_id=action)
    for dev in (ws, other):
        res = await dev.wait_for("task.action_result", action_id=action, timeout=TIMEOUT_S + 5)
        assert res["status"] == "failed" and res["reason"] == "expired"
        await dev.wait_for("task.updated", status="paused")
    await drain_briefly(ws, other)
    for dev in (ws, other):
        ends = [e for e in dev.events if e["type"] == "task.action_result"]
        assert len(ends) == 1 and not [e for e in dev.events if e["type"] == "task.error"]
    expired = [*logged(a, "task_action_expired"), *logged(b, "task_action_expired")]
    assert len([e for e in expired if e.get("task_id") == task_id]) == 1
    assert (await http.get(f"/v1/tasks/{task_id}")).json()["status"] == "paused"
    await other.conn.close()
    await ws.conn.close()
    await http.aclose()


async def drain_briefly(*sockets: WsClient) -> None:
    """Read what else arrives within half a second (a second result would show here)."""
    for ws in sockets:
        with contextlib.suppress(TimeoutError):
            while True:
                await ws.next_event(timeout=0.5)


async def test_nobody_picks_it_up_the_server_that_asked_expires_it_after_a_grace(
    fleet: tuple[ForkedServer, ForkedServer],
) -> None:
    """The user leaves (no resume anywhere): A lets go of the task all the same, and as its
    backstop expires the approval TASK_EXPIRY_GRACE_S after its time: stored expired, the
    action withdrawn, the task paused (nothing stays pending)."""
    a, _ = fleet
    user = "leaving-user"
    ws, _, task_id, action = await asked_on(a, user)
    await ws.conn.close()
    async with http_for(a, user) as http:
        deadline = TIMEOUT_S + GRACE_S + 10
        for _ in range(int(deadline * 4)):
            task = (await http.get(f"/v1/tasks/{task_id}")).json()
            if task["status"] != "running":
                break
            await asyncio.sleep(0.25)
        assert task["status"] == "paused"
        assert [(x["status"], x["details"]["reason"]) for x in task["actions"]] == [
            ("failed", "expired")
        ]
        assert (await http.get(f"/v1/approvals/{action}")).json()["status"] == "expired"
    assert logged(a, "task_released", task_id=task_id)
    assert len(logged(a, "task_action_expired", task_id=task_id)) == 1


async def test_after_a_restart_the_waiting_preview_is_asked_again_and_answerable(
    tmp_path: Path,
    crash_llm: FakeOpenAI,  # noqa: F811
    wire_mongo: str,  # noqa: F811
) -> None:
    """One server (single mode) killed -9 while a preview waits; restarted on the same
    store, the user's next session is asked it again and the yes is carried out (before,
    nobody asked it and it stayed pending until the next session after its expiry)."""
    crash_llm.set_default(ScreenVLM(MARKERS, {k: list(v) for k, v in ANSWERS.items()}))
    user = "restart-user"
    store = {"MONGODB_URI": wire_mongo, "MONGODB_DB": f"restart_{new_id()}"}
    c = Crashable(tmp_path, crash_llm, store)
    server = await c.start()
    try:
        async with http_for(server, user) as http:
            consent = {"items": dict.fromkeys(CONSENT_ITEMS, True)}
            assert (await http.post("/v1/users/consent", json=consent)).status_code == 200
            ws = await open_ws(server, user)
            r = await http.post("/v1/tasks", json=BODY | {"screenshot": b64(HOME)})
            task_id, action = r.json()["task_id"], r.json()["next_action_preview"]["action_id"]
            await ws.wait_for("approval.request", call_id=action)
        c.kill()
        await c.reap()
        server = await c.start()
        ws = await open_ws(server, user)
        await ws.wait_for("approval.request", call_id=action)
        await ws.send({"type": "approval.response", "call_id": action, "decision": "approve"})
        go = await ws.wait_for("task.action_execute", action_id=action)
        assert go["task_id"] == task_id and go["target"] == "Menu"
        await ws.conn.close()
    finally:
        await server.stop()


async def approved_on_a_moved_to_b(
    a: ForkedServer, b: ForkedServer, user: str
) -> tuple[WsClient, WsClient, httpx.AsyncClient, str, str]:
    """A task started on A, its first action approved there (task.action_execute: the step
    is in progress), then the session resumed on B. A's and B's sockets, a REST client on
    B, the task and the action."""
    on_a, sid, task_id, action = await asked_on(a, user)
    await on_a.send({"type": "task.confirm", "task_id": task_id, "action_id": action})
    await on_a.wait_for("task.action_execute", action_id=action)
    on_b = await open_ws(b, user, session_id=sid)
    return on_a, on_b, http_for(b, user), task_id, action


async def interrupted_on_b(
    a: ForkedServer, on_a: WsClient, on_b: WsClient, http: httpx.AsyncClient, task_id: str
) -> dict[str, Any]:
    """A ends its session; B tells the stored outcome: the task paused, with the reason."""
    assert (await on_a.wait_for("error", timeout=5))["code"] == "session_taken_over"
    upd = await on_b.wait_for("task.updated", task_id=task_id, status="paused", timeout=10)
    why = upd["interrupted"]
    assert why["reason"] == "session_moved" and why["step"] == 1
    assert "moved to another server" in why["message"] and "resume" in why["message"]
    stored = (await http.get(f"/v1/tasks/{task_id}")).json()
    assert stored["status"] == "paused" and stored["interrupted"] == why
    assert logged(a, "task_step_interrupted", task_id=task_id)
    return stored


async def test_a_step_in_progress_is_stopped_on_a_and_told_on_b(
    fleet: tuple[ForkedServer, ForkedServer],
) -> None:
    """An approved action the client is executing when the session moves: A stops the step
    (the task stored paused with the reason, the action withdrawn), B tells its socket; a
    late report of the action on B is refused (nothing is carried out twice); resumed on B,
    the step is read again from the current screen and asked on B."""
    a, b = fleet
    on_a, ws, http, task_id, action = await approved_on_a_moved_to_b(a, b, "busy-user")
    stored = await interrupted_on_b(a, on_a, ws, http, task_id)
    assert [(x["action_id"], x["status"], x["details"]["reason"]) for x in stored["actions"]] == [
        (action, "failed", "interrupted")
    ]
    await ws.send({"type": "task.executed", "task_id": task_id, "action_id": action})
    await ws.send_raw(b"\x02" + LIST)
    err = await ws.wait_for("error")
    assert err["code"] == "invalid_state" and err["fatal"] is False
    assert "paused" in err["message"]
    assert not [e for e in ws.events if e["type"] in ("task.action_result", "task.action_execute")]
    await ws.send({"type": "task.control", "task_id": task_id, "command": "resume"})
    await ws.wait_for("task.updated", task_id=task_id, status="running")
    nxt = await ws.wait_for("approval.request", timeout=10)
    assert nxt["arguments"]["target"] == "Big Mac"  # read from the screen B saw (the list)
    resumed = (await http.get(f"/v1/tasks/{task_id}")).json()
    assert resumed["status"] == "running" and resumed["interrupted"] is None
    await ws.conn.close()
    await http.aclose()


async def test_a_step_stopped_before_the_user_comes_back_is_told_on_b(
    fleet: tuple[ForkedServer, ForkedServer],
) -> None:
    """The connection to A drops mid-step and A stores the task paused before the user
    reconnects, on B: B has nothing running to follow, and tells the stored outcome at once."""
    a, b = fleet
    user = "dropped-user"
    on_a, sid, task_id, action = await asked_on(a, user)
    await on_a.send({"type": "task.confirm", "task_id": task_id, "action_id": action})
    await on_a.wait_for("task.action_execute", action_id=action)
    await on_a.conn.close()  # the network drops: A's last session of the user ends
    async with http_for(b, user) as http:
        for _ in range(100):
            stored = (await http.get(f"/v1/tasks/{task_id}")).json()
            if stored["status"] == "paused":
                break
            await asyncio.sleep(0.1)
        assert stored["status"] == "paused"
        on_b = await open_ws(b, user, session_id=sid)
        upd = await on_b.wait_for("task.updated", task_id=task_id, status="paused", timeout=5)
        assert upd["interrupted"] == stored["interrupted"]
        assert upd["interrupted"]["reason"] == "session_moved"
    await on_b.conn.close()


async def test_a_screen_reading_in_progress_is_dropped_on_a(
    fleet: tuple[ForkedServer, ForkedServer],
    crash_llm: FakeOpenAI,  # noqa: F811
) -> None:
    """The VLM still reading the screen after the action (verification) when the session
    moves: its answer, arriving after A stopped the step, is dropped (no result, no next
    preview anywhere), and B tells the paused task once."""
    a, b = fleet
    slow = {k: list(v) for k, v in ANSWERS.items()}
    slow["list"] = [Reply(text=json.dumps(ANSWERS["list"][0]), ttft_ms=READING_MS)]
    crash_llm.set_default(ScreenVLM(MARKERS, slow))
    try:
        on_a, sid, task_id, action = await asked_on(a, "reading-user")
        await on_a.send({"type": "task.confirm", "task_id": task_id, "action_id": action})
        await on_a.wait_for("task.action_execute", action_id=action)
        await on_a.send({"type": "task.executed", "task_id": task_id, "action_id": action})
        asked_before = len(crash_llm.chat_requests())
        await on_a.send_raw(b"\x02" + LIST)  # the verifying reading starts
        reading_from = time.monotonic()
        for _ in range(200):  # the session moves while the VLM has the reading
            if len(crash_llm.chat_requests()) > asked_before:
                break
            await asyncio.sleep(0.05)
        ws = await open_ws(b, "reading-user", session_id=sid)
        http = http_for(b, "reading-user")
        await interrupted_on_b(a, on_a, ws, http, task_id)
        # until the reading has come back on A (and would have been previewed)
        await asyncio.sleep(READING_MS / 1000 + 0.5 - (time.monotonic() - reading_from))
        await drain_briefly(ws)
        stored = (await http.get(f"/v1/tasks/{task_id}")).json()
        assert stored["status"] == "paused" and stored["current_step"] == 0
        assert [(x["status"], x["details"]["reason"]) for x in stored["actions"]] == [
            ("failed", "interrupted")
        ]
        told = [e for e in ws.events if e["type"] == "task.updated"]
        assert [e["status"] for e in told] == ["paused"]
        assert not [e for e in ws.events if e["type"] in ("task.action_result", "approval.request")]
        await ws.conn.close()
        await http.aclose()
    finally:
        crash_llm.set_default(ScreenVLM(MARKERS, {k: list(v) for k, v in ANSWERS.items()}))


async def test_a_task_waiting_for_its_first_screen_starts_on_b(
    fleet: tuple[ForkedServer, ForkedServer],
) -> None:
    """Started on A without a screen (it waits for the first frame), then the session moves:
    A lets go of it, B picks it up, and the screen shared on B starts its first step there."""
    a, b = fleet
    user = "screenless-user"
    on_a, sid, task = await started_on(a, user)
    assert task["next_action_preview"] is None  # it waits for a screen
    task_id = task["task_id"]
    ws = await open_ws(b, user, session_id=sid)
    assert (await on_a.wait_for("error", timeout=5))["code"] == "session_taken_over"
    for _ in range(40):  # B picks it up within a poll or two of A letting go
        if logged(b, "task_adopted", task_id=task_id):
            break
        await asyncio.sleep(0.25)
    await ws.send_raw(b"\x02" + HOME)
    asked = await ws.wait_for("approval.request", timeout=10)
    assert asked["arguments"]["task_id"] == task_id and asked["arguments"]["target"] == "Menu"
    assert logged(a, "task_released", task_id=task_id)
    async with http_for(b, user) as http:
        stored = (await http.get(f"/v1/tasks/{task_id}")).json()
    assert stored["status"] == "running" and len(stored["actions"]) == 1
    await ws.conn.close()
