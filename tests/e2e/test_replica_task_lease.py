"""A replica killed (SIGKILL) in the middle of a screen task step: two real server processes
(REPLICA_MODE=multi) on one MongoDB-wire store. While A lives it renews the task's lease, so
a second device of the user on B leaves the step alone. Once A is dead nobody renews: the
session resumed on B finds the lease lapsed, and B stores the task paused with a reason the
user can read, withdraws the step's action and tells the user; a late report of the action
is refused (nothing runs twice), and resume reads the screen again on B
(docs/protocol.md, "Screen task approvals across replicas")."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from server.store import new_id
from tests.e2e.test_crash import crash_llm, wire_mongo  # noqa: F401 (fixtures)
from tests.e2e.test_replica_task_approvals import asked_on, http_for, logged, open_ws
from tests.e2e.test_tasks_rest import ANSWERS, LIST, MARKERS
from tests.fakes.openai_server import FakeOpenAI
from tests.forked_server import replica_fleet
from tests.tasks.screens import ScreenVLM

pytestmark = pytest.mark.timeout(180)
LEASE_S = 2.0  # TASK_LEASE_S: renewed every 0.67 s


async def test_a_replica_killed_mid_step_leaves_the_task_paused_for_the_user_on_b(
    tmp_path: Path,
    crash_llm: FakeOpenAI,  # noqa: F811
    wire_mongo: str,  # noqa: F811
) -> None:
    crash_llm.set_default(ScreenVLM(MARKERS, {k: list(v) for k, v in ANSWERS.items()}))
    shared = {
        "MONGODB_URI": wire_mongo,
        "MONGODB_DB": f"lease_{new_id()}",
        "LLM_BASE_URL": crash_llm.base_url,
        "LLM_API_KEY": "test-key",
        "LLM_MODEL": "fake-model",
        "TASK_LEASE_S": str(LEASE_S),
        "APPROVAL_POLL_S": "0.25",
        "SESSION_TAKEOVER_CHECK_S": "0.25",
        "TASK_SCREEN_WAIT_S": "2",
    }
    user = "crashing-user"
    async with replica_fleet(tmp_path, shared) as (a, b):
        # the step is in progress on A: its action approved, the client executing it
        on_a, sid, task_id, action = await asked_on(a, user)
        await on_a.send({"type": "task.confirm", "task_id": task_id, "action_id": action})
        await on_a.wait_for("task.action_execute", action_id=action)

        # a second device on B follows the task; A lives and renews: nothing is paused
        other = await open_ws(b, user)
        await asyncio.sleep(2 * LEASE_S + 0.5)
        async with http_for(b, user) as http:
            assert (await http.get(f"/v1/tasks/{task_id}")).json()["status"] == "running"
        assert not [e for e in other.events if e.get("status") == "paused"]

        a.kill()  # SIGKILL: no shutdown, no handover, no more renewals
        assert await a.wait_exit() == -9
        ws = await open_ws(b, user, session_id=sid)
        res = await ws.wait_for("task.action_result", action_id=action, timeout=LEASE_S + 6)
        assert res["status"] == "failed" and res["reason"] == "interrupted"
        upd = await ws.wait_for("task.updated", task_id=task_id, status="paused", timeout=5)
        why = upd["interrupted"]
        assert why["reason"] == "server_lost" and why["step"] == 1
        assert "stopped responding" in why["message"] and "resume" in why["message"]
        http = http_for(b, user)
        stored = (await http.get(f"/v1/tasks/{task_id}")).json()
        assert stored["status"] == "paused" and stored["interrupted"] == why
        assert [
            (x["action_id"], x["status"], x["details"]["reason"]) for x in stored["actions"]
        ] == [(action, "failed", "interrupted")]
        told = await other.wait_for("task.updated", task_id=task_id, status="paused", timeout=5)
        assert told["interrupted"] == why  # every device of the user on B hears it

        # the client's late report of the action is refused: nothing is carried out twice
        await ws.send({"type": "task.executed", "task_id": task_id, "action_id": action})
        await ws.send_raw(b"\x02" + LIST)
        err = await ws.wait_for("error")
        assert err["code"] == "invalid_state" and err["fatal"] is False
        assert not [e for e in ws.events if e["type"] == "task.action_execute"]

        # resumed: the step is read again from the screen B has (the list) and asked on B
        await ws.send({"type": "task.control", "task_id": task_id, "command": "resume"})
        await ws.wait_for("task.updated", task_id=task_id, status="running")
        nxt = await ws.wait_for("approval.request", timeout=10)
        assert nxt["arguments"]["target"] == "Big Mac"
        resumed = (await http.get(f"/v1/tasks/{task_id}")).json()
        assert resumed["status"] == "running" and resumed["interrupted"] is None
        assert len(logged(b, "task_step_interrupted", task_id=task_id)) == 1
        await http.aclose()
        await other.conn.close()
        await ws.conn.close()
