"""Approvals when several servers share one store (REPLICA_MODE=multi).

The user may answer on another server than the one whose turn asked (a second device, a
second tab). The asking turn waits on its in-process future, and also reads the store every
APPROVAL_POLL_S, so it goes on within about that long wherever the answer was given.

Then two servers could carry the decision out: the asking turn, and the server that got the
answer with no turn of its own waiting (it would continue the turn, hub/continuation.py).
Exactly one does: the one whose ``claim_approval`` wins in the store. The server that got
the answer leaves a session served by another server time to claim first (its turn may be
polling); a session it serves itself, or nobody serves, it claims at once.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING

from server.agent.approvals import Decision, decision_of
from server.store.base import ApprovalRecord

if TYPE_CHECKING:
    from server.store.base import Store

HANDOFF_MARGIN_S = 1.0  # beyond two polls: the asking server's store read and claim


@dataclass
class ApprovalFleet:
    store: Store
    owner: str  # this process (INSTANCE_ID)
    poll_s: float  # APPROVAL_POLL_S

    async def wait(self, user_id: str, call_id: str, fut: asyncio.Future[Decision]) -> Decision:
        """The decision: this process's answer (``fut``), or one stored by another server."""
        while True:
            done, _ = await asyncio.wait({fut}, timeout=self.poll_s)
            if done:
                return fut.result()
            rec = await self.store.get_approval(user_id, call_id)
            if rec is not None and rec.status != "pending":
                return decision_of(rec)

    async def claim(self, user_id: str, call_id: str) -> bool:
        """This server carries the decision out (False: another one does)."""
        return await self.store.claim_approval(user_id, call_id, self.owner)

    async def claim_after_asker(self, rec: ApprovalRecord) -> bool:
        """On the server that got the answer while no turn of its own waits for it: the
        asking session's server, if another, is given two polls (and a margin) first."""
        if await self.store.sessions_owned_elsewhere([rec.session_id], self.owner):
            await asyncio.sleep(2 * self.poll_s + HANDOFF_MARGIN_S)
        return await self.claim(rec.user_id, rec.id)
