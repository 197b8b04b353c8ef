"""Contract tests for approvals and proactive fires, on both adapters (conftest ``store``)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from server.store import Store
from server.store.base import utcnow

A, B = "user-a", "user-b"


async def test_approval_lifecycle_and_isolation(store: Store) -> None:
    expires = utcnow() + timedelta(minutes=5)
    rec = await store.add_approval(
        A,
        "s1",
        "call_1",
        "weather__set_alarm",
        {"at": "07:00", "날짜": "내일"},
        "Set an alarm",
        expires,
    )
    assert rec.status == "pending" and rec.arguments == {"at": "07:00", "날짜": "내일"}
    assert abs((rec.expires_at - expires).total_seconds()) < 0.01
    assert rec.created_at.tzinfo is not None
    # another user sees nothing and cannot decide it
    assert await store.get_approval(B, "call_1") is None
    assert await store.decide_approval(B, "call_1", "approved") is None
    assert await store.list_approvals(B) == []
    assert [r.id for r in await store.list_approvals(A, status="pending")] == ["call_1"]

    edited = await store.decide_approval(A, "call_1", "edited", arguments={"at": "08:00"})
    assert edited is not None and edited.status == "edited"
    assert edited.decided_arguments == {"at": "08:00"} and edited.decided_at is not None
    # settled once: a second answer loses
    assert await store.decide_approval(A, "call_1", "rejected", message="no") is None
    got = await store.get_approval(A, "call_1")
    assert got is not None and got.status == "edited"
    assert await store.list_approvals(A, status="pending") == []


async def test_same_call_id_for_two_users_is_two_approvals(store: Store) -> None:
    t = utcnow() + timedelta(minutes=1)
    await store.add_approval(A, "s1", "call_x", "t", {}, "d", t)
    await store.add_approval(B, "s2", "call_x", "t", {}, "d", t)
    assert (await store.decide_approval(A, "call_x", "rejected", message="nope")) is not None
    b = await store.get_approval(B, "call_x")
    assert b is not None and b.status == "pending"


async def test_list_approvals_newest_first_filters_and_pages(store: Store) -> None:
    t = utcnow() + timedelta(minutes=1)
    for i in range(4):
        await store.add_approval(A, "s1" if i < 2 else "s2", f"c{i}", "t", {"i": i}, "d", t)
    await store.decide_approval(A, "c1", "expired", message="expired")
    assert [r.id for r in await store.list_approvals(A)] == ["c3", "c2", "c1", "c0"]
    assert [r.id for r in await store.list_approvals(A, session_id="s1")] == ["c1", "c0"]
    assert [r.id for r in await store.list_approvals(A, status="expired")] == ["c1"]
    assert [r.id for r in await store.list_approvals(A, limit=2, offset=1)] == ["c2", "c1"]


async def test_decide_refuses_a_non_decision(store: Store) -> None:
    await store.add_approval(A, "s1", "c", "t", {}, "d", utcnow())
    with pytest.raises(ValueError):
        await store.decide_approval(A, "c", "pending")


async def test_proactive_fire_is_claimed_once_under_a_race(store: Store) -> None:
    key = "schedule:morning:2026-12-07T07:00:00+09:00"
    results = await asyncio.gather(
        *(store.claim_proactive_fire(A, key, "schedule", f"s{i}") for i in range(8))
    )
    assert results.count(True) == 1
    # per user: B's same key is B's own
    assert await store.claim_proactive_fire(B, key, "schedule") is True
    assert await store.claim_proactive_fire(A, "idle:1", "idle") is True
    fires = await store.list_proactive_fires(A)
    assert [f.key for f in fires] == ["idle:1", key]
    assert fires[1].trigger == "schedule" and fires[1].fired_at.tzinfo is not None
    assert [f.key for f in await store.list_proactive_fires(B)] == [key]


async def test_a_decided_approval_is_claimed_once_by_one_server(store: Store) -> None:
    """claim_approval: which replica carries a decision out. Only a decided approval, only
    the user's own, exactly one winner under a race."""
    await store.add_approval(A, "s1", "c", "t", {}, "d", utcnow() + timedelta(minutes=1))
    assert await store.claim_approval(A, "c", "replica-a") is False  # still pending
    await store.decide_approval(A, "c", "approved")
    assert await store.claim_approval(B, "c", "replica-a") is False  # not B's
    won = await asyncio.gather(*(store.claim_approval(A, "c", f"replica-{i}") for i in range(8)))
    assert won.count(True) == 1
    assert await store.claim_approval(A, "c", "replica-0") is False  # once, even for the winner
    assert await store.claim_approval(A, "missing", "replica-a") is False
