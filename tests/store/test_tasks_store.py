"""Store contract for screen tasks: tasks, actions, routes and consent, on both adapters
(the ``store`` fixture runs every test on SQLite and on the MongoDB-wire server)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from server.store import Store
from server.store.base import CONSENT_ITEMS, NewTaskAction

A, B = "user-a", "user-b"


async def test_task_round_trip_and_isolation(store: Store) -> None:
    t = await store.create_task(A, "버거앱", "빅맥 세트 1개 주문")
    assert t.status == "running" and t.current_step == 0 and t.ended_at is None
    assert t.details == {} and t.started_at.tzinfo is not None
    got = await store.get_task(A, t.id)
    assert got == t
    assert await store.get_task(B, t.id) is None  # another user's id is not found
    assert await store.update_task(B, t.id, status="cancelled") is False
    assert await store.delete_task(B, t.id) is False
    assert (await store.get_task(A, t.id)).status == "running"  # type: ignore[union-attr]


async def test_list_tasks_newest_first(store: Store) -> None:
    ids = [(await store.create_task(A, "app", f"t{i}")).id for i in range(3)]
    await store.create_task(B, "app", "other")
    assert [t.id for t in await store.list_tasks(A)] == ids[::-1]
    assert [t.id for t in await store.list_tasks(A, limit=1, offset=1)] == [ids[1]]
    assert await store.list_tasks("nobody") == []


async def test_update_task_conditional_and_atomic(store: Store) -> None:
    t = await store.create_task(A, "app", "t")
    details = {"failure": {"reason": "no_change", "options": ["retry", "cancel"]}}
    assert await store.update_task(A, t.id, status="failed", current_step=2, details=details)
    got = await store.get_task(A, t.id)
    assert got is not None and got.status == "failed" and got.current_step == 2
    assert got.details == details and got.updated_at >= t.updated_at
    # only_if_status: a cancel and a resume racing on a failed task: exactly one wins
    results = await asyncio.gather(
        store.update_task(A, t.id, status="cancelled", only_if_status=("failed", "running")),
        store.update_task(A, t.id, status="running", only_if_status=("failed",)),
    )
    assert sorted(results) == [False, True]
    ended = datetime.now(UTC)
    assert await store.update_task(A, t.id, status="completed", ended_at=ended)
    got = await store.get_task(A, t.id)
    assert got is not None and got.ended_at is not None
    assert abs(got.ended_at - ended) < timedelta(milliseconds=1)
    assert await store.update_task(A, t.id, status="running", only_if_status=("paused",)) is False


async def test_actions_round_trip_order_and_conditional_update(store: Store) -> None:
    t = await store.create_task(A, "app", "t")
    target = {"target": "주문하기 버튼", "coordinates": {"x": 100, "y": 200}, "confidence": 0.9}
    a1 = await store.add_task_action(A, t.id, 1, "click", target, screenshot_ref="ref-1")
    a2 = await store.add_task_action(A, t.id, 2, "type", {"target": "memo"}, details={"n": 1})
    assert a1.status == "pending" and a1.execution_time_ms is None
    assert await store.get_task_action(A, t.id, a1.id) == a1
    assert await store.get_task_action(B, t.id, a1.id) is None
    assert await store.get_task_action(A, "other-task", a1.id) is None
    assert [a.id for a in await store.list_task_actions(A, t.id)] == [a1.id, a2.id]
    assert await store.list_task_actions(B, t.id) == []

    ok = await store.update_task_action(
        A,
        t.id,
        a1.id,
        status="success",
        execution_time_ms=812,
        details={"vlm_ms": 700},
        only_if_status=("pending",),
    )
    assert ok
    again = await store.update_task_action(
        A, t.id, a1.id, status="failed", only_if_status=("pending",)
    )
    assert again is False  # already decided
    got = await store.get_task_action(A, t.id, a1.id)
    assert got is not None and got.status == "success" and got.execution_time_ms == 812
    assert got.details == {"vlm_ms": 700} and got.target_element == target
    assert got.screenshot_ref == "ref-1"


async def test_route_planned_and_appended(store: Store) -> None:
    t = await store.create_task(A, "app", "t")
    r = await store.get_task_route(A, t.id)
    assert r is not None and r.planned_route == [] and r.actual_route == []
    assert await store.get_task_route(B, t.id) is None
    plan = ["메뉴 열기", "빅맥 선택", "장바구니"]
    assert await store.update_task_route(A, t.id, planned_route=plan)
    for i in range(3):
        assert await store.update_task_route(A, t.id, append_actual={"step": i, "screen": f"s{i}"})
    r = await store.get_task_route(A, t.id)
    assert r is not None and r.planned_route == plan
    assert r.actual_route == [{"step": i, "screen": f"s{i}"} for i in range(3)]
    assert await store.update_task_route(B, t.id, append_actual={"x": 1}) is False


async def test_delete_task_removes_actions_and_route(store: Store) -> None:
    t = await store.create_task(A, "app", "t")
    keep = await store.create_task(A, "app", "keep")
    a = await store.add_task_action(A, t.id, 1, "click", {})
    await store.add_task_action(A, keep.id, 1, "click", {})
    assert await store.delete_task(A, t.id) is True
    assert await store.get_task(A, t.id) is None
    assert await store.get_task_action(A, t.id, a.id) is None
    assert await store.get_task_route(A, t.id) is None
    assert len(await store.list_task_actions(A, keep.id)) == 1
    assert await store.delete_task(A, t.id) is False


async def test_consent_items_with_first_time_kept(store: Store) -> None:
    assert await store.get_consent(A) == {}
    got = await store.set_consent(A, {"automation_scope": True, "legal_risk": True})
    assert set(got) == {"automation_scope", "legal_risk"}
    first = got["automation_scope"]
    assert first.tzinfo is not None and abs(first - datetime.now(UTC)) < timedelta(seconds=5)
    await asyncio.sleep(0.01)
    got = await store.set_consent(A, dict.fromkeys(CONSENT_ITEMS, True))
    assert set(got) == set(CONSENT_ITEMS)
    assert got["automation_scope"] == first  # agreeing again keeps the first time
    got = await store.set_consent(A, {"data_storage": False})  # withdraw one
    assert set(got) == set(CONSENT_ITEMS) - {"data_storage"}
    assert await store.get_consent(B) == {}
    with pytest.raises(ValueError, match="unknown consent items"):
        await store.set_consent(A, {"pay_for_me": True})


async def test_settle_action_with_its_route_step_and_next_action_once(store: Store) -> None:
    t = await store.create_task(A, "app", "t")
    a = await store.add_task_action(A, t.id, 1, "click", {"target": "Menu"}, details={"n": 1})
    entry = {"step": 1, "screen": "Home", "action": "Menu", "screen_after": "List"}
    nxt = NewTaskAction(2, "type", {"target": "Search", "text": "빅맥"}, "tasks/x/002-1.jpg")
    nxt.details = {"attempt": 1}
    # another user's settle changes nothing
    assert await store.settle_task_action(
        B, t.id, a.id, status="success", execution_time_ms=5, details={}, current_step=1
    ) == (False, None)
    ok, added = await store.settle_task_action(
        A,
        t.id,
        a.id,
        status="success",
        execution_time_ms=120,
        details={"n": 1, "diff": {"changed": True}},
        append_actual=entry,
        current_step=1,
        then_add=nxt,
    )
    assert ok is True and added is not None
    got = await store.get_task_action(A, t.id, a.id)
    assert got is not None and got.status == "success" and got.execution_time_ms == 120
    assert got.details == {"n": 1, "diff": {"changed": True}}
    route = await store.get_task_route(A, t.id)
    assert route is not None and route.actual_route == [entry]
    assert (await store.get_task(A, t.id)).current_step == 1  # type: ignore[union-attr]
    actions = await store.list_task_actions(A, t.id)
    assert [x.id for x in actions] == [a.id, added.id]
    assert actions[1] == added and added.status == "pending" and added.step_number == 2
    assert added.target_element == {"target": "Search", "text": "빅맥"}
    assert added.screenshot_ref == "tasks/x/002-1.jpg" and added.details == {"attempt": 1}
    # settled once: a second verdict (e.g. after a cancel withdrew it) writes nothing
    again = await store.settle_task_action(
        A,
        t.id,
        a.id,
        status="failed",
        execution_time_ms=1,
        details={},
        append_actual=entry,
        current_step=2,
        then_add=nxt,
    )
    assert again == (False, None)
    assert (await store.get_task_action(A, t.id, a.id)).status == "success"  # type: ignore[union-attr]
    assert (await store.get_task_route(A, t.id)).actual_route == [entry]  # type: ignore[union-attr]
    assert (await store.get_task(A, t.id)).current_step == 1  # type: ignore[union-attr]
    assert len(await store.list_task_actions(A, t.id)) == 2
    # a failed verdict moves neither the route nor the step
    ok, none = await store.settle_task_action(
        A, t.id, added.id, status="failed", execution_time_ms=None, details={"reason": "x"}
    )
    assert ok is True and none is None
    assert (await store.get_task_route(A, t.id)).actual_route == [entry]  # type: ignore[union-attr]
    assert (await store.get_task(A, t.id)).current_step == 1  # type: ignore[union-attr]


async def test_a_running_tasks_lease_is_renewed_and_a_lapsed_one_pauses_once(
    store: Store,
) -> None:
    """REPLICA_MODE=multi: the server holding a running task renews its lease; another
    server that saw the lease lapse (the holder died) pauses the task, unless a renewal or
    any other write came first. Both filtered by user."""
    t = await store.create_task(A, "app", "t")
    assert t.lease_until is None
    until = datetime.now(UTC) + timedelta(seconds=5)
    assert await store.renew_task_lease(B, t.id, until) is False  # another user's
    assert await store.renew_task_lease(A, t.id, until) is True
    held = await store.get_task(A, t.id)
    assert held is not None and held.lease_until is not None
    assert abs(held.lease_until - until) < timedelta(milliseconds=1)
    assert held.updated_at == t.updated_at  # a renewal is not a change of the task
    why = {"interrupted": {"reason": "server_lost", "step": 1}}
    # a follower that saw the task before this renewal: the renewal wins
    assert await store.pause_lapsed_task(A, t, why) is False
    assert await store.pause_lapsed_task(B, held, why) is False  # another user's
    # the task changed after the follower saw it (resumed, a step settled): the change wins
    await store.update_task(A, t.id, details={"note": "changed"})
    assert await store.pause_lapsed_task(A, held, why) is False
    seen = await store.get_task(A, t.id)
    assert seen is not None and seen.status == "running"
    assert await store.pause_lapsed_task(A, seen, why) is True
    paused = await store.get_task(A, t.id)
    assert paused is not None and paused.status == "paused"
    assert paused.details == why and paused.lease_until is None
    assert await store.pause_lapsed_task(A, seen, why) is False  # once
    assert await store.renew_task_lease(A, t.id, until) is False  # the holder learns it
    # a running task no server ever held (a lease never written) pauses the same way
    never = await store.create_task(A, "app", "t2")
    assert await store.pause_lapsed_task(A, never, why) is True
    assert (await store.get_task(A, never.id)).status == "paused"  # type: ignore[union-attr]
