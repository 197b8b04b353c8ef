"""Screen task actions go through the same approval gate as the agent's consequential tool
calls (issue 20): a previewed action is stored as a pending approval of the user (its call
id is the action's id, its name ``screen_task.<action type>``) and asked with
approval.request; whichever way the user answers (approval.response, task.confirm, the REST
confirm, a spoken yes or no) settles it, and it expires after APPROVAL_TIMEOUT_S like the
gate's (the action is then withdrawn and the task paused). Mixed into TaskRunner.

Across replicas (REPLICA_MODE=multi) a waiting preview follows the session: the server
whose last session of the user ends lets go of it (``release_if_waiting``), the server the
session resumes on picks it up from the store (``pending_approval``), asks it again, takes
the answer and expires it on time. The one that let go keeps a backstop: it expires the
approval TASK_EXPIRY_GRACE_S after its time if nobody did (docs/protocol.md, "Screen task
approvals across replicas")."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import TYPE_CHECKING

from server.store.base import (
    TASK_APPROVAL_PREFIX,
    ApprovalRecord,
    ApprovalStatus,
    TaskActionRecord,
    utcnow,
)
from server.tasks.handover import FOLLOW_S, TaskHandover
from server.tasks.state import Answered, Live, TaskError

if TYPE_CHECKING:
    pass


def is_task_approval(name: str) -> bool:
    return name.startswith(TASK_APPROVAL_PREFIX)


def approval_text(action: TaskActionRecord) -> str:
    """The approval's description: what the preview shows."""
    t = action.target_element
    what = t.get("description") or t.get("target")
    step = f"Screen task step {action.step_number}"
    return f"{step}: {action.action_type} '{t.get('target')}' ({what})."


class TaskApprovals(TaskHandover):
    """(The runner's parts it uses are declared on TaskHandover, plus these.)"""

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
        """At its time: settled `expired`, the action withdrawn and the task paused. A task
        this server let go of (the session moved) is expired by the server that picked it
        up; this one only steps in TASK_EXPIRY_GRACE_S later, if nobody did."""
        await asyncio.sleep(after_s)
        if self.live is not live:
            await asyncio.sleep(self.settings.task_expiry_grace_s)
        timeout = self.settings.approval_timeout_s
        msg = f"The user did not answer within {timeout:g} s, so it was not done."
        if not await self._settle_approval(action.id, "expired", msg):
            await self._settled_elsewhere(live, action)  # answered in time, or not here
            return
        self.log.info("task_action_expired", task_id=live.task.id, action_id=action.id)
        if live.pending is not action or live.approved_at is not None:
            return
        if self.live is not live:  # let go of: the task as the store has it now
            try:
                live = await self._live(live.task.id)
            except TaskError:
                return  # ended meanwhile, or another task is live here
            if live.pending is None or live.pending.id != action.id:
                return
        await self._pause_expired(live)

    async def _settled_elsewhere(self, live: Live, action: TaskActionRecord) -> None:
        """The action's approval was settled by another server holding the task too (the
        user's other device): if it expired there, this server's sessions are told as well
        (the action withdrawn, the task paused: stored conditionally, so once); if the
        action was carried out or withdrawn there, this server's copy of the task is
        dropped (the store has it)."""
        if self.live is not live or live.pending is not action or live.approved_at is not None:
            return  # settled here (answered, or withdrawn by this server)
        stored = await self.store.get_task_action(self.user_id, live.task.id, action.id)
        why = stored.details.get("reason") if stored is not None else None
        if stored is None or not (stored.status == "pending" or why == "expired"):
            self.live = None
            return
        rec = await self.store.get_approval(self.user_id, action.id)
        if rec is None or rec.status != "expired":
            self.live = None
            return
        await self._pause_expired(live)

    async def _pause_expired(self, live: Live) -> None:
        """The expired action withdrawn and the task paused, both stored conditionally: when
        two servers holding the task (two devices) do it at once, each tells its own
        sessions once and neither fails."""
        await self._withdraw(live, "expired")
        try:
            await self._set_status(live, "paused", only_if=("running",))
        except TaskError:  # paused (or ended) by the other server first
            fresh = await self.store.get_task(self.user_id, live.task.id)
            if fresh is None:
                return
            live.task = fresh
        await self._updated(live)

    async def pending_approval(self) -> ApprovalRecord | None:
        """The live task's previewed action's approval while it waits (asked again on a new
        session); one another server asked before the session moved here is picked up."""
        live = self.live
        if live is None:
            rec = await self._adopt()
            if rec is None and self.settings.replica_mode == "multi":
                await self._tell_recent_interruption()
            return rec
        if live.pending is None or live.approved_at is not None:
            return None
        rec = await self.store.get_approval(self.user_id, live.pending.id)
        return rec if rec is not None and rec.status == "pending" else None

    async def _tell_recent_interruption(self) -> None:
        """The other server stopped the step and stored the task paused before this session
        looked (so there was nothing running to follow): tell it here all the same, once per
        new session within FOLLOW_S of the interruption."""
        tasks = await self.store.list_tasks(self.user_id, limit=1)
        t = tasks[0] if tasks else None
        if t is None or t.status != "paused" or not t.details.get("interrupted"):
            return
        if (utcnow() - t.updated_at).total_seconds() > FOLLOW_S:
            return
        await self._tell_outcome(t)

    async def _adopt(self) -> ApprovalRecord | None:
        """The user's running task whose previewed action waits for an answer asked by
        another server (or before this server let go of it): held here from now on, its
        expiry timed here (its stored time). One whose approval expired meanwhile is
        withdrawn and the task paused here. None when no such task waits."""
        running = [
            t for t in await self.store.list_tasks(self.user_id, limit=5) if t.status == "running"
        ]
        if not running:
            return None
        actions = await self.store.list_task_actions(self.user_id, running[0].id)
        pending = [a for a in actions if a.status == "pending"]
        rec = await self.store.get_approval(self.user_id, pending[-1].id) if pending else None
        if self.live is not None:
            return None
        if rec is None or rec.status not in ("pending", "expired"):
            if self.settings.replica_mode == "multi":  # a step busy on another server
                self.follow_elsewhere(running[0].id)
            return None
        live = await self._live(running[0].id)
        action = live.pending
        assert action is not None
        self.log.info("task_adopted", task_id=live.task.id, action_id=action.id)
        if rec.status == "expired":  # nobody carried its expiry out: done here
            await self._pause_expired(live)
            return None
        left = max(0.0, (rec.expires_at - utcnow()).total_seconds())
        self.spawn(self.quiet(self._expire_approval(live, action, left)))
        return rec

    def release_if_waiting(self) -> None:
        """The last session of this server stopped listening (REPLICA_MODE=multi): a task
        that only waits for the user's answer is let go of (the store holds all of it), so
        the server the session moves to can take the answer and carry it out; a step in
        progress is stopped (``TaskHandover``)."""
        live = self.live
        if self.settings.replica_mode != "multi" or self.listeners:
            return
        if self.interrupt_if_busy() or self.let_go_if_screenless():
            return
        if (
            live is None
            or live.pending is None
            or live.approved_at is not None
            or live.busy
            or live.task.status != "running"
        ):
            return
        self.live = None
        self.log.info("task_released", task_id=live.task.id, action_id=live.pending.id)

    async def answer_approval(
        self, call_id: str, approve: bool, message: str | None, answered: Answered | None = None
    ) -> None:
        """approval.response for a task action: the same as task.confirm."""
        live = self.live if self.live is not None else await self._adopted()
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

    async def _adopted(self) -> Live | None:
        await self._adopt()
        return self.live

    async def _settled_before(self, live: Live, action_id: str, yes: bool) -> None:
        """An answer that found the approval settled already goes on only as the repeat of
        a yes this server carried out; anything else (expired, or answered on another
        server or device, which carries it out) is refused, so nothing runs twice."""
        rec = await self.store.get_approval(self.user_id, action_id)
        status = rec.status if rec is not None else "gone"
        if status == "expired":
            raise TaskError(409, "not_pending", "The action's approval expired.")
        if not (yes and status == "approved" and live.approved_at is not None):
            raise TaskError(409, "not_pending", f"The action was already answered ({status}).")
