"""The user's approval before a consequential tool call (issue 20).

A gate per live session: `ask` stores a pending approval, has the protocol send
`approval.request`, and waits for the decision (an event, a click in the studio, or a short
spoken yes/no heard by `hear`) until APPROVAL_TIMEOUT_S, when it is settled `expired` and the
model is told. Decisions are stored before anything acts on them; the store's settle-once
update makes two racing answers (voice and click) end with exactly one decision. A pending
approval outlives its socket: the next session of the user gets it again (`resend_pending`).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Literal

from server.store.base import ApprovalRecord, new_id, utcnow

if TYPE_CHECKING:
    from server.store.base import Store

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

    @property
    def go(self) -> bool:
        return self.status in ("approved", "edited")


def decision_of(rec: ApprovalRecord) -> Decision:
    return Decision(rec.status, rec.decided_arguments, rec.message)  # type: ignore[arg-type]


class ApprovalError(Exception):
    """An answer the gate cannot take (unknown or already settled call id, bad edit)."""


class ApprovalGate:
    def __init__(
        self,
        store: Store,
        user_id: str,
        session_id: str,
        timeout_s: float,
        send: Callable[[ApprovalRecord], Awaitable[None]],
    ) -> None:
        self.store = store
        self.user_id = user_id
        self.session_id = session_id
        self.timeout_s = timeout_s
        self.send = send
        self._waiting: dict[str, asyncio.Future[Decision]] = {}

    @property
    def waiting(self) -> bool:
        return bool(self._waiting)

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
        fut: asyncio.Future[Decision] = asyncio.get_running_loop().create_future()
        self._waiting[call_id] = fut
        try:
            await self.send(rec)
            async with asyncio.timeout(self.timeout_s):
                return await asyncio.shield(fut)
        except TimeoutError:
            return await self.expire(call_id)
        finally:
            self._waiting.pop(call_id, None)

    async def expire(self, call_id: str) -> Decision:
        msg = f"The user did not answer within {self.timeout_s:g} s, so it was not done."
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
        fut = self._waiting.get(call_id)
        if fut is not None and not fut.done():
            fut.set_result(decision_of(rec))
        return rec

    async def hear(self, text: str) -> bool:
        """A short spoken or typed yes/no while exactly one approval waits is its answer
        (True: consumed, no new turn)."""
        if len(self._waiting) != 1:
            return False
        choice = classify(text)
        if choice is None:
            return False
        call_id = next(iter(self._waiting))
        try:
            await self.answer(call_id, choice, message=text if choice == "reject" else None)
        except ApprovalError:
            return False
        return True

    async def resend_pending(self) -> list[ApprovalRecord]:
        """On a new or resumed session: approvals still pending are asked again; those past
        their expiry are settled `expired` first."""
        sent = []
        for rec in await self.store.list_approvals(self.user_id, status="pending"):
            if rec.expires_at <= utcnow():
                await self.expire(rec.id)
                continue
            await self.send(rec)
            sent.append(rec)
        return sent


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
