"""The user's approval before a consequential tool call (issue 20).

A gate per live session: `ask` stores a pending approval, has the protocol send
`approval.request`, and waits for the decision (an event, a click in the studio, or a short
spoken yes/no heard by `hear`) until APPROVAL_TIMEOUT_S, when it is settled `expired` and the
model is told. Decisions are stored before anything acts on them; the store's settle-once
update makes two racing answers (voice and click) end with exactly one decision. A pending
approval outlives its socket: the next session of the user gets it again (`resend_pending`),
and a decision on it, when no turn of this process waits for it any more, is handed to
`resume` (the session runs or skips the call and continues the turn, hub/continuation.py).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Literal

from server.logging import get_logger
from server.store.base import TASK_APPROVAL_PREFIX, ApprovalRecord, new_id, utcnow

TASK_LOST_MESSAGE = (
    "The screen task was no longer running (the server restarted), so it was not done."
)

if TYPE_CHECKING:
    from server.agent.approval_fleet import ApprovalFleet
    from server.store.base import Store

log = get_logger(__name__)

Choice = Literal["approve", "edit", "reject"]
STATUS: dict[str, Any] = {"approve": "approved", "edit": "edited", "reject": "rejected"}
# a short answer to a pending question, in Korean or English; anything longer is a new turn
_YES = re.compile(
    r"^(응|어|네|예|그래|좋아|돼|해|해줘|해 줘|부탁해|오케이"
    r"|yes|yeah|yep|sure|ok|okay|go ahead|do it|please do)"
    r"([\s,.!~]*(해줘|해 줘|해|줘|please|do it|go ahead))?[\s.!~]*$",
    re.I,
)
_NO = re.compile(
    r"^(아니|아니야|아니요|아뇨|싫어|하지 마|하지마|됐어|취소|no|nope|don'?t|cancel|stop)"
    r"([\s,.!~]*(하지 마|하지마|don'?t|do it|thanks|please))*[\s.!~]*$",
    re.I,
)


def classify(text: str) -> Choice | None:
    """'응, 해줘' -> approve; "no, don't" -> reject; anything else -> None (a new turn)."""
    t = text.strip().lower()
    if len(t) > 40:
        return None
    if _NO.match(t):
        return "reject"
    if _YES.match(t):
        return "approve"
    return None


@dataclass
class Decision:
    status: Literal["approved", "edited", "rejected", "expired"]
    arguments: dict[str, Any] | None = None  # an edit's new arguments
    message: str | None = None  # a rejection's reason, or why it expired
    # decided where this turn did not hear it (another server of the fleet), which then
    # carried it out: this turn must not run it again
    elsewhere: bool = False

    @property
    def go(self) -> bool:
        return self.status in ("approved", "edited") and not self.elsewhere


def decision_of(rec: ApprovalRecord) -> Decision:
    return Decision(rec.status, rec.decided_arguments, rec.message)  # type: ignore[arg-type]


class ApprovalError(Exception):
    """An answer the gate cannot take (unknown or already settled call id, bad edit)."""


Resume = Callable[[ApprovalRecord, Decision], Awaitable[None]]


class ApprovalWaiters:
    """The turns of this process waiting for a decision, by user and call id: an answer on
    any of the user's sockets wakes the turn that asked, wherever it runs here."""

    def __init__(self) -> None:
        self._futures: dict[tuple[str, str], asyncio.Future[Decision]] = {}

    def add(self, user_id: str, call_id: str) -> asyncio.Future[Decision]:
        fut: asyncio.Future[Decision] = asyncio.get_running_loop().create_future()
        self._futures[(user_id, call_id)] = fut
        return fut

    def remove(self, user_id: str, call_id: str) -> None:
        self._futures.pop((user_id, call_id), None)

    def get(self, user_id: str, call_id: str) -> asyncio.Future[Decision] | None:
        return self._futures.get((user_id, call_id))


class ApprovalGate:
    def __init__(
        self,
        store: Store,
        user_id: str,
        session_id: str,
        timeout_s: float,
        send: Callable[[ApprovalRecord], Awaitable[None]],
        waiters: ApprovalWaiters | None = None,
        resume: Resume | None = None,
        fleet: ApprovalFleet | None = None,
        task_grace_s: float = 10.0,
    ) -> None:
        self.store = store
        self.user_id = user_id
        self.session_id = session_id
        self.timeout_s = timeout_s
        self.send = send
        self.waiters = waiters if waiters is not None else ApprovalWaiters()
        self.resume = resume  # a decision no turn waits for: the session continues the turn
        self.fleet = fleet  # several servers on one store: decisions made on another
        # a screen task approval's own runner expires it on time; past this grace nobody will
        self.task_grace = timedelta(seconds=task_grace_s)
        self._handoffs: set[asyncio.Task[None]] = set()
        self._waiting: set[str] = set()  # asked by this session's turn
        self._orphans: dict[str, ApprovalRecord] = {}  # asked again here; their turn is gone

    @property
    def waiting(self) -> bool:
        return bool(self._waiting or self._orphans)

    def asked_by_turn(self, call_id: str) -> bool:
        """The running turn of this session asks it (not a re-ask after a reconnect)."""
        return call_id in self._waiting

    async def ask(
        self, call_id: str, name: str, arguments: dict[str, Any], description: str
    ) -> Decision:
        """Store, send, and wait for the user's decision (or the expiry)."""
        expires = utcnow() + timedelta(seconds=self.timeout_s)
        if await self.store.get_approval(self.user_id, call_id) is not None:
            # some models number their calls call_0, call_1 ... in every turn
            call_id = f"{call_id}-{new_id()[:8]}"
        rec = await self.store.add_approval(
            self.user_id, self.session_id, call_id, name, arguments, description, expires
        )
        fut = self.waiters.add(self.user_id, call_id)
        self._waiting.add(call_id)
        try:
            await self.send(rec)
            async with asyncio.timeout(self.timeout_s):
                if self.fleet is None:
                    return await asyncio.shield(fut)
                decision = await self.fleet.wait(self.user_id, call_id, fut)
        except TimeoutError:
            decision = await self.expire(call_id)
            if self.fleet is None:
                # answered without waking this turn: on another server, which went on with it
                decision.elsewhere = decision.status != "expired" and not fut.done()
                return decision
        finally:
            self._waiting.discard(call_id)
            self.waiters.remove(self.user_id, call_id)
        # of the servers that could carry it out, the one that claims it does
        decision.elsewhere = not await self.fleet.claim(self.user_id, call_id)
        return decision

    def _expiry_message(self) -> str:
        return f"The user did not answer within {self.timeout_s:g} s, so it was not done."

    async def expire(self, call_id: str) -> Decision:
        msg = self._expiry_message()
        rec = await self.store.decide_approval(self.user_id, call_id, "expired", message=msg)
        if rec is None:  # answered at the last moment: that answer stands
            got = await self.store.get_approval(self.user_id, call_id)
            assert got is not None
            return decision_of(got)
        return decision_of(rec)

    async def answer(
        self,
        call_id: str,
        choice: Choice,
        arguments: dict[str, Any] | None = None,
        message: str | None = None,
    ) -> ApprovalRecord:
        """Store the user's decision, then wake the waiting turn."""
        if choice == "edit" and arguments is None:
            raise ApprovalError("An edit needs the new arguments.")
        if choice != "edit":
            arguments = None
        rec = await self.store.decide_approval(
            self.user_id, call_id, STATUS[choice], arguments=arguments, message=message
        )
        if rec is None:
            raise ApprovalError(f"No pending approval {call_id!r}.")
        self._orphans.pop(call_id, None)
        fut = self.waiters.get(self.user_id, call_id)
        if fut is not None and not fut.done():
            fut.set_result(decision_of(rec))
        else:  # no turn of this process waits: continue the turn that asked here
            await self._continue(rec)
        return rec

    async def hear(self, text: str) -> bool:
        """A short spoken or typed yes/no while exactly one approval waits is its answer
        (True: consumed, no new turn)."""
        open_ids = self._waiting | set(self._orphans)
        if len(open_ids) != 1:
            return False
        choice = classify(text)
        if choice is None:
            return False
        call_id = next(iter(open_ids))
        try:
            await self.answer(call_id, choice, message=text if choice == "reject" else None)
        except ApprovalError:
            return False
        return True

    async def resend_pending(self) -> list[ApprovalRecord]:
        """On a new or resumed session: approvals still pending are asked again; those past
        their expiry are settled `expired` first. Returns those no turn of this process
        waits for (their expiry is `expire_later`'s)."""
        orphans = []
        for rec in await self.store.list_approvals(self.user_id, status="pending"):
            if rec.name.startswith(TASK_APPROVAL_PREFIX):
                # A screen task's: its runner asks and settles it. One long past its expiry
                # lost its runner (a restart): settled here, so it never stays pending.
                if rec.expires_at + self.task_grace <= utcnow():
                    await self.store.decide_approval(
                        self.user_id, rec.id, "expired", message=TASK_LOST_MESSAGE
                    )
                continue
            if rec.expires_at <= utcnow():
                if self.waiters.get(self.user_id, rec.id) is None:
                    await self._expire_orphan(rec.id)
                continue
            if self.waiters.get(self.user_id, rec.id) is None:
                self._orphans[rec.id] = rec
                orphans.append(rec)
            await self.send(rec)
        return orphans

    async def expire_later(self, rec: ApprovalRecord) -> None:
        """An approval asked again whose turn is gone expires at its time like any other:
        settled `expired`, and the session says the call was not done (``resume``)."""
        await asyncio.sleep(max(0.0, (rec.expires_at - utcnow()).total_seconds()))
        if self._orphans.pop(rec.id, None) is not None:
            await self._expire_orphan(rec.id)

    async def _expire_orphan(self, call_id: str) -> None:
        msg = self._expiry_message()
        got = await self.store.decide_approval(self.user_id, call_id, "expired", message=msg)
        if got is not None:
            await self._continue(got)

    async def _continue(self, rec: ApprovalRecord) -> None:
        """A decision no turn of this process waits for: ``resume`` continues its turn. With
        several servers, only once this one claimed it (the asking server's turn may be
        waiting and go on with it itself), off the answer's handler."""
        if self.resume is None:
            return
        if self.fleet is None:
            await self.resume(rec, decision_of(rec))
            return
        task = asyncio.create_task(self._claim_then_resume(self.fleet, self.resume, rec))
        self._handoffs.add(task)
        task.add_done_callback(self._handoffs.discard)

    async def _claim_then_resume(
        self, fleet: ApprovalFleet, resume: Resume, rec: ApprovalRecord
    ) -> None:
        try:
            if await fleet.claim_after_asker(rec):
                await resume(rec, decision_of(rec))
            else:
                log.info("approval_carried_elsewhere", call_id=rec.id, status=rec.status)
        except Exception:
            log.exception("approval_handoff_failed", call_id=rec.id)


def approval_json(rec: ApprovalRecord) -> dict[str, Any]:
    return {
        "call_id": rec.id,
        "session_id": rec.session_id,
        "name": rec.name,
        "arguments": rec.arguments,
        "description": rec.description,
        "status": rec.status,
        "created_at": rec.created_at.isoformat(),
        "expires_at": rec.expires_at.isoformat(),
        "decided_at": rec.decided_at.isoformat() if rec.decided_at else None,
        "decided_arguments": rec.decided_arguments,
        "message": rec.message,
    }
