"""The approval gate over a real store (both adapters): approve, edit, reject, expiry, a
spoken yes/no, racing answers, and pending approvals asked again on a new socket."""

from __future__ import annotations

import asyncio

import pytest

from server.agent.approval_fleet import ApprovalFleet
from server.agent.approvals import (
    ApprovalError,
    ApprovalGate,
    ApprovalWaiters,
    Decision,
    Resume,
    classify,
)
from server.store import Store
from server.store.base import ApprovalRecord


@pytest.mark.parametrize(
    ("text", "choice"),
    [
        ("응, 해줘", "approve"),
        ("네", "approve"),
        ("그래 해줘!", "approve"),
        ("Yes, do it.", "approve"),
        ("ok", "approve"),
        ("no, don't", "reject"),
        ("아니, 하지 마", "reject"),
        ("취소", "reject"),
        ("응 그런데 내일 날씨는 어때? 그리고 알람은 몇 시로 했어?", None),
        ("what time is it", None),
    ],
)
def test_short_answers_are_decisions_and_anything_else_a_turn(text: str, choice: str) -> None:
    assert classify(text) == choice


ASKED: dict[int, asyncio.Event] = {}


def gate(
    store: Store,
    sent: list[ApprovalRecord],
    timeout_s: float = 5.0,
    waiters: ApprovalWaiters | None = None,
    resume: Resume | None = None,
) -> ApprovalGate:
    """A gate whose `send` (the protocol's approval.request) records what went out."""
    asked = asyncio.Event()

    async def send(rec: ApprovalRecord) -> None:
        sent.append(rec)
        asked.set()

    g = ApprovalGate(store, "u1", "s1", timeout_s, send, waiters, resume)
    ASKED[id(g)] = asked
    return g


async def asked(g: ApprovalGate) -> None:
    """Until the gate sent its request (the turn now waits)."""
    await ASKED[id(g)].wait()
    ASKED[id(g)].clear()


async def answered(g: ApprovalGate, call_id: str, *args: object) -> asyncio.Task:
    task = asyncio.create_task(g.ask(call_id, "weather__set_alarm", {"time": "07:00"}, "Set"))
    await asked(g)
    await g.answer(call_id, *args)  # type: ignore[arg-type]
    return task


async def test_approve_edit_reject_are_stored_then_returned(store: Store) -> None:
    sent: list[ApprovalRecord] = []
    g = gate(store, sent)
    d = await (await answered(g, "c1", "approve"))
    assert d.go and d.status == "approved" and d.arguments is None
    d = await (await answered(g, "c2", "edit", {"time": "08:00"}))
    assert d.go and d.status == "edited" and d.arguments == {"time": "08:00"}
    d = await (await answered(g, "c3", "reject", None, "not today"))
    assert not d.go and d.message == "not today"
    assert [r.id for r in sent] == ["c1", "c2", "c3"]
    stored = {r.id: r.status for r in await store.list_approvals("u1")}
    assert stored == {"c1": "approved", "c2": "edited", "c3": "rejected"}
    with pytest.raises(ApprovalError):  # settled: a second answer is refused
        await g.answer("c1", "reject")
    with pytest.raises(ApprovalError):
        await g.answer("unknown", "approve")
    assert await store.list_approvals("u2") == []


async def test_edit_without_arguments_is_refused(store: Store) -> None:
    g = gate(store, [])
    task = asyncio.create_task(g.ask("c1", "t", {}, "d"))
    await asked(g)
    with pytest.raises(ApprovalError, match="new arguments"):
        await g.answer("c1", "edit")
    await g.answer("c1", "approve")
    assert (await task).status == "approved"


async def test_expiry_rejects_and_says_so(store: Store) -> None:
    g = gate(store, [], timeout_s=0.3)
    d = await g.ask("c1", "t", {}, "d")
    assert d.status == "expired" and not d.go and "did not answer within 0.3 s" in d.message
    rec = await store.get_approval("u1", "c1")
    assert rec is not None and rec.status == "expired"
    assert not g.waiting


async def test_a_spoken_yes_answers_the_one_pending_approval(store: Store) -> None:
    g = gate(store, [])
    assert await g.hear("응, 해줘") is False  # nothing pending: a normal turn
    task = asyncio.create_task(g.ask("c1", "t", {}, "d"))
    await asked(g)
    assert await g.hear("what's the weather?") is False
    assert await g.hear("no, don't") is True
    d = await task
    assert d.status == "rejected" and d.message == "no, don't"


async def test_racing_answers_settle_once(store: Store) -> None:
    g = gate(store, [])
    task = asyncio.create_task(g.ask("c1", "t", {}, "d"))
    await asked(g)
    results = await asyncio.gather(
        g.answer("c1", "approve"), g.answer("c1", "reject"), return_exceptions=True
    )
    assert sum(isinstance(r, ApprovalError) for r in results) == 1
    winner = next(r for r in results if not isinstance(r, Exception))
    assert (await task).status == winner.status


async def test_pending_approvals_are_asked_again_on_a_new_socket(store: Store) -> None:
    first: list[ApprovalRecord] = []
    g1 = gate(store, first, timeout_s=30)
    task = asyncio.create_task(g1.ask("c1", "t", {"a": 1}, "d"))
    await asked(g1)
    task.cancel()  # the socket closed: the turn is gone, the approval stays pending
    with pytest.raises(asyncio.CancelledError):
        await task
    stale = gate(store, [], timeout_s=0.01)
    await stale.ask("old", "t", {}, "d")  # expired already
    again: list[ApprovalRecord] = []
    g2 = gate(store, again)
    resent = await g2.resend_pending()
    assert [r.id for r in resent] == ["c1"] and [r.id for r in again] == ["c1"]
    rec = await g2.answer("c1", "approve")
    assert rec.status == "approved"


async def test_an_answer_on_another_socket_reaches_the_turn_that_asked(store: Store) -> None:
    """Two sessions of the user in one process share the waiters: the answer on the second
    wakes the first's turn, and nothing is continued twice."""
    waiters = ApprovalWaiters()
    resumed: list[tuple[str, str]] = []

    async def resume(rec: ApprovalRecord, d: Decision) -> None:
        resumed.append((rec.id, d.status))

    asking = gate(store, [], waiters=waiters)
    other = gate(store, [], waiters=waiters, resume=resume)
    task = asyncio.create_task(asking.ask("c1", "t", {}, "d"))
    await asked(asking)
    assert await other.resend_pending() == []  # asked again, but not an orphan here
    await other.answer("c1", "approve")
    d = await task
    assert d.status == "approved" and d.go and not d.elsewhere
    assert resumed == []


async def test_an_answer_on_another_server_is_continued_there_only(store: Store) -> None:
    """Two servers (their own waiters): the one that got the answer continues the turn; the
    one whose turn asked never heard it, so at its timeout it must not run the call too."""
    resumed: list[tuple[str, str]] = []

    async def resume(rec: ApprovalRecord, d: Decision) -> None:
        resumed.append((rec.id, d.status))

    asking = gate(store, [], timeout_s=0.5, waiters=ApprovalWaiters())
    other = gate(store, [], waiters=ApprovalWaiters(), resume=resume)
    task = asyncio.create_task(asking.ask("c1", "t", {}, "d"))
    await asked(asking)
    assert [r.id for r in await other.resend_pending()] == ["c1"]
    await other.answer("c1", "approve")
    assert resumed == [("c1", "approved")]
    d = await task
    assert d.status == "approved" and d.elsewhere and not d.go


async def fleet_pair(
    store: Store, resume: Resume, timeout_s: float = 60.0
) -> tuple[ApprovalGate, ApprovalGate, asyncio.Event]:
    """Two servers on one store (REPLICA_MODE=multi): the asking session is served by
    replica-a (its owner in the store); the user's other socket is on replica-b."""
    asking_session = await store.create_session("u1", "emma")
    assert await store.claim_session("u1", asking_session.id, "replica-a")
    other_session = await store.create_session("u1", "emma")
    assert await store.claim_session("u1", other_session.id, "replica-b")

    sent = asyncio.Event()

    async def send(rec: ApprovalRecord) -> None:
        sent.set()

    a = ApprovalGate(
        store,
        "u1",
        asking_session.id,
        timeout_s,
        send,
        ApprovalWaiters(),
        resume,
        ApprovalFleet(store, "replica-a", poll_s=0.1),
    )
    b = ApprovalGate(
        store,
        "u1",
        other_session.id,
        timeout_s,
        send,
        ApprovalWaiters(),
        resume,
        ApprovalFleet(store, "replica-b", poll_s=0.1),
    )
    return a, b, sent


async def test_with_several_servers_the_asking_turn_goes_on_with_an_answer_given_elsewhere(
    store: Store,
) -> None:
    """REPLICA_MODE=multi: the turn on replica-a reads the store while it waits, so an answer
    given on replica-b reaches it long before its timeout, and it carries the call out;
    replica-b, which got the answer, leaves it to the asking server (no continuation)."""
    resumed: list[tuple[str, str]] = []

    async def resume(rec: ApprovalRecord, d: Decision) -> None:
        resumed.append((rec.id, d.status))

    a, b, sent = await fleet_pair(store, resume)
    task = asyncio.create_task(a.ask("c1", "t", {"time": "07:00"}, "d"))
    await sent.wait()  # asked: a's turn waits
    assert [r.id for r in await b.resend_pending()] == ["c1"]  # an orphan on b
    await b.answer("c1", "edit", {"time": "08:00"})
    d = await asyncio.wait_for(task, 10)  # its timeout is 60 s
    assert d.status == "edited" and d.arguments == {"time": "08:00"} and d.go
    await asyncio.gather(*b._handoffs)  # b gave the asking server its turn, then lost
    assert resumed == []


async def test_with_several_servers_a_decision_whose_turn_is_gone_is_continued_once(
    store: Store,
) -> None:
    """No turn waits on replica-a any more (the socket closed): replica-b, which got the
    answer, claims the decision after giving replica-a its chance, and continues it."""
    resumed: list[tuple[str, str]] = []

    async def resume(rec: ApprovalRecord, d: Decision) -> None:
        resumed.append((rec.id, d.status))

    a, b, sent = await fleet_pair(store, resume)
    task = asyncio.create_task(a.ask("c1", "t", {}, "d"))
    await sent.wait()  # asked: a's turn waits
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await b.resend_pending()
    await b.answer("c1", "reject", message="not now")
    await asyncio.gather(*b._handoffs)
    assert resumed == [("c1", "rejected")]
    assert await store.claim_approval("u1", "c1", "replica-a") is False  # b carried it out


async def test_an_approval_asked_again_is_answered_by_voice_or_expires_and_is_continued(
    store: Store,
) -> None:
    """Approvals whose turn is gone (asked again on a new socket): a spoken yes decides the
    one that waits and the session continues it; one left unanswered expires at its time
    and is continued too (the persona says it was not done)."""
    resumed: list[tuple[str, str]] = []

    async def resume(rec: ApprovalRecord, d: Decision) -> None:
        resumed.append((rec.id, d.status))

    async def orphaned(call_id: str, timeout_s: float) -> None:
        g = gate(store, [], timeout_s=timeout_s)
        task = asyncio.create_task(g.ask(call_id, "t", {}, "d"))
        await asked(g)
        task.cancel()  # the socket closed: the turn is gone
        with pytest.raises(asyncio.CancelledError):
            await task

    await orphaned("c1", 10.0)  # answered long before it expires, on a loaded host too
    g = gate(store, [], resume=resume)
    assert [r.id for r in await g.resend_pending()] == ["c1"] and g.waiting
    assert await g.hear("응, 해줘") is True
    assert resumed == [("c1", "approved")] and not g.waiting

    await orphaned("c2", 0.4)
    g = gate(store, [], resume=resume)
    (rec,) = await g.resend_pending()
    await g.expire_later(rec)  # sleeps until its expiry (0.4 s after it was asked)
    assert resumed == [("c1", "approved"), ("c2", "expired")] and not g.waiting
    got = await store.get_approval("u1", "c2")
    assert got is not None and got.status == "expired"


async def test_a_screen_task_approval_left_by_a_restart_is_settled_not_left_pending(
    store: Store,
) -> None:
    """A task action's approval is expired by its runner's timer; after a restart there is no
    runner, so the next session settles one long past its expiry (and does not ask it)."""
    from datetime import timedelta

    from server.store.base import TASK_APPROVAL_PREFIX, utcnow

    past = utcnow() - timedelta(minutes=5)
    soon = utcnow() + timedelta(minutes=5)
    args = {"task_id": "t1", "step": 2, "target": "Order"}
    await store.add_approval(
        "u1", "task:t1", "a-old", f"{TASK_APPROVAL_PREFIX}click", args, "d", past
    )
    await store.add_approval(
        "u1", "task:t1", "a-live", f"{TASK_APPROVAL_PREFIX}click", args, "d", soon
    )
    sent: list[ApprovalRecord] = []
    g = gate(store, sent)
    assert await g.resend_pending() == [] and sent == []  # the task runner asks its own
    old = await store.get_approval("u1", "a-old")
    assert old is not None and old.status == "expired" and "restarted" in (old.message or "")
    live = await store.get_approval("u1", "a-live")
    assert live is not None and live.status == "pending"  # its runner still settles it
    assert await store.get_approval("u2", "a-old") is None
