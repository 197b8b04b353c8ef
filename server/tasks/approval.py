"""Screen task actions go through the same approval gate as the agent's consequential tool
calls (issue 20): a previewed action is stored as a pending approval of the user (its call
id is the action's id, its name ``screen_task.<action type>``) and asked with
approval.request; whichever way the user answers (approval.response, task.confirm, the REST
confirm, a spoken yes or no) settles it, and it expires after APPROVAL_TIMEOUT_S like the
gate's (the action is then withdrawn and the task paused). Mixed into TaskRunner."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from server.config import Settings
from server.store.base import (
    TASK_APPROVAL_PREFIX,
    ApprovalRecord,
    ApprovalStatus,
    Store,
    TaskActionRecord,
    utcnow,
)
from server.tasks.state import Answered, Live, TaskError


def is_task_approval(name: str) -> bool:
    return name.startswith(TASK_APPROVAL_PREFIX)


def approval_text(action: TaskActionRecord) -> str:
    """The approval's description: what the preview shows."""
    t = action.target_element
    what = t.get("description") or t.get("target")
    step = f"Screen task step {action.step_number}"
    return f"{step}: {action.action_type} '{t.get('target')}' ({what})."


class TaskApprovals:
    user_id: str
    store: Store
    settings: Settings
    live: Live | None
    ask: Callable[[ApprovalRecord], Awaitable[None]]  # TaskFeed's fan-out
    spawn: Callable[..., Any]
    quiet: Callable[..., Awaitable[None]]
    approve: Callable[..., Awaitable[None]]  # TaskRunner's: task.confirm

    async def _ask_approval(self, live: Live, action: TaskActionRecord) -> None:
        """Stored pending, then asked (approval.request by every listening session)."""
        t = action.target_element
        timeout = self.settings.approval_timeout_s
        rec = await self.store.add_approval(
            self.user_id,
            f"task:{live.task.id}",
            action.id,
            f"{TASK_APPROVAL_PREFIX}{action.action_type}",
            {
                "task_id": live.task.id,
                "step": action.step_number,
                "target": t.get("target"),
                "coordinates": t.get("coordinates"),
                "text": t.get("text", ""),
                "final": bool(t.get("final")),
            },
            approval_text(action),
            utcnow() + timedelta(seconds=timeout),
        )
        await self.ask(rec)  # each session's protocol sends its approval.request
        self.spawn(self.quiet(self._expire_approval(live, action, timeout)))

    async def _settle_approval(
        self, action_id: str, status: ApprovalStatus, message: str | None = None
    ) -> bool:
        """Settle the action's approval if it is still pending (False: it was not)."""
        rec = await self.store.decide_approval(self.user_id, action_id, status, message=message)
        return rec is not None

    async def _expire_approval(self, live: Live, action: TaskActionRecord, after_s: float) -> None:
        await asyncio.sleep(after_s)
        msg = f"The user did not answer within {after_s:g} s, so it was not done."
        if not await self._settle_approval(action.id, "expired", msg):
            return  # answered in time
        if live.pending is action and live.approved_at is None and live.task.status == "running":
            await self.approve(live.task.id, action.id, False, reason="expired")

    async def pending_approval(self) -> ApprovalRecord | None:
        """The live task's previewed action's approval while it waits (asked again on a new
        session)."""
        live = self.live
        if live is None or live.pending is None or live.approved_at is not None:
            return None
        rec = await self.store.get_approval(self.user_id, live.pending.id)
        return rec if rec is not None and rec.status == "pending" else None

    async def answer_approval(
        self, call_id: str, approve: bool, message: str | None, answered: Answered | None = None
    ) -> None:
        """approval.response for a task action: the same as task.confirm."""
        live = self.live
        if live is None or live.pending is None or live.pending.id != call_id:
            raise TaskError(409, "not_pending", f"No screen task action {call_id!r} waits.")
        await self.approve(live.task.id, call_id, approve, message=message, answered=answered)

    async def answer_if_task_approval(
        self, call_id: str, decision: str, message: str | None, answered: Answered | None
    ) -> bool:
        """approval.response (or a studio click) on any call id: a screen task action's
        pending approval is answered here, the same as task.confirm (True); any other call
        is the agent's gate's (False). TaskError when it cannot be taken."""
        rec = await self.store.get_approval(self.user_id, call_id)
        if rec is None or rec.status != "pending" or not is_task_approval(rec.name):
            return False
        if decision == "edit":
            msg = "A screen task action cannot be edited: approve or reject it."
            raise TaskError(409, "not_editable", msg)
        await self.answer_approval(call_id, decision == "approve", message, answered)
        return True

    async def _approval_expired(self, action_id: str) -> bool:
        rec = await self.store.get_approval(self.user_id, action_id)
        return rec is not None and rec.status == "expired"
