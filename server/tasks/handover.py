"""A screen task step in progress when the user's session moves to another server
(REPLICA_MODE=multi): the step is stopped where it runs, the task stored ``paused`` with the
reason, and the server the session moved to tells it (docs/protocol.md, "Screen task
approvals across replicas").

The server whose last session of the user ends while a step is busy (the VLM reading the
screen, or an approved action waiting for the client's report) stores the task ``paused``
with ``interrupted`` in its details (reason ``session_moved``, the step, a message for the
user), withdraws the step's action (reason ``interrupted``) and lets go of the task: a
reading that comes back later is dropped (the task is not running), a report of the action
is refused (``invalid_state``), so nothing runs twice. The server the session opened on
follows the task in the store for ``FOLLOW_S``: when it leaves ``running`` the user's
sessions there get ``task.updated`` with the stored outcome; a preview the other server made
and let go of meanwhile is picked up and asked there. ``resume`` reads the screen again.

A task that waits for its first screen is let go of the same way (``waiting_for_screen`` in
its stored details): the new server picks it up, and the screen frames sent to it start the
step there.

When the server running the step died instead (nobody is left to stop it), the follower
finds the task's lease lapsed and pauses it itself (lease.py, reason ``server_lost``)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from server.store.base import ApprovalRecord, TaskRecord
from server.tasks.lease import TaskLease
from server.tasks.state import LIVE, Frame, Live, TaskError

FOLLOW_S = 10.0  # how long the new server follows a task busy on another one


class TaskHandover(TaskLease):
    listeners: set[Any]  # TaskFeed's attached sessions
    ask: Callable[[ApprovalRecord], Awaitable[None]]  # TaskFeed's fan-out
    spawn: Callable[..., Any]
    quiet: Callable[..., Awaitable[None]]
    frame: Frame | None  # TaskFeed's latest screen
    _plan_locked: Callable[..., Awaitable[None]]  # TaskSteps': read the screen, preview
    _adopt: Callable[[], Awaitable[ApprovalRecord | None]]
    _set_status: Callable[..., Awaitable[None]]
    _following: asyncio.Task[Any] | None = None

    def let_go_if_screenless(self) -> bool:
        """The last session of this server stopped listening: a task waiting for its first
        screen is let go of (stored as such), for the server the session moved to. True when
        there was one."""
        live = self.live
        if live is None or live.task.status != "running" or not live.waiting_for_screen:
            return False
        if live.busy or live.pending is not None:
            return False
        self.spawn(self.quiet(self._let_go_screenless(live)))
        return True

    async def _let_go_screenless(self, live: Live) -> None:
        details = {**live.task.details, "waiting_for_screen": True}
        if not await self.store.update_task(
            self.user_id, live.task.id, details=details, only_if_status=("running",)
        ):
            return
        live.task.details = details
        if self.live is live and not self.listeners:
            self.live = None
            self.log.info("task_released", task_id=live.task.id, action_id=None)

    async def _pick_up_screenless(self, task_id: str) -> None:
        """A task another server let go of while it waited for its first screen: held here,
        and the latest screen (or the next) starts its step."""
        live = await self._live(task_id)
        details = {k: v for k, v in live.task.details.items() if k != "waiting_for_screen"}
        if not await self.store.update_task(
            self.user_id, task_id, details=details, only_if_status=("running",)
        ):
            return
        live.task.details = details
        live.waiting_for_screen = True
        self.log.info("task_adopted", task_id=task_id, action_id=None)
        if self.frame is not None and not live.busy:
            live.waiting_for_screen = False
            await self._plan_locked(live, self.frame.image)

    def interrupt_if_busy(self) -> bool:
        """The last session of this server stopped listening: a step in progress is stopped
        (in the background: stored first). True when there was one."""
        live = self.live
        if live is None or live.task.status != "running":
            return False
        if not live.busy and live.approved_at is None:
            return False
        self.spawn(self.quiet(self._interrupt(live)))
        return True

    async def _interrupt(self, live: Live) -> None:
        step = live.task.current_step + 1
        interrupted = {
            "reason": "session_moved",
            "step": step,
            "message": f"Step {step} was stopped because the session moved to another "
            "server while it was in progress; resume to read the screen again.",
        }
        try:
            await self._set_status(live, "paused", only_if=("running",), interrupted=interrupted)
        except TaskError:
            return  # paused, ended or taken meanwhile: nothing in progress to stop
        self.log.info("task_step_interrupted", task_id=live.task.id, step=step)
        async with self._lock:  # a step past its last check finishes writing first
            if live.pending is not None:
                await self._withdraw(live, "interrupted")
        if self.live is live and not self.listeners:
            self.live = None

    def follow_elsewhere(self, task_id: str) -> None:
        """The user's task runs a step on another server (a session here, none holding the
        task): follow it in the store for FOLLOW_S."""
        if self._following is not None and not self._following.done():
            return
        self._following = self.spawn(self.quiet(self._follow(task_id)))

    async def _follow(self, task_id: str) -> None:
        """Until the task's outcome is known here, or FOLLOW_S (at least a lease and two
        polls: a server that died just after renewing is noticed)."""
        s = self.settings
        deadline = time.monotonic() + max(FOLLOW_S, s.task_lease_s + 2 * s.approval_poll_s)
        while time.monotonic() < deadline:
            await asyncio.sleep(self.settings.approval_poll_s)
            if self.live is not None or not self.listeners:
                return  # held here now (a command picked it up), or nobody to tell
            task = await self.store.get_task(self.user_id, task_id)
            if task is None:
                return
            if task.status == "running" and task.details.get("waiting_for_screen"):
                await self._pick_up_screenless(task_id)
                return
            if task.status == "running":
                rec = await self._adopt()  # a preview made there and let go of
                if rec is not None:
                    await self.ask(rec)
                    return
                if await self.interrupt_lapsed(task):  # the server running it died
                    return
                continue
            await self._tell_outcome(task)
            return

    async def _tell_outcome(self, task: TaskRecord) -> None:
        """The stored outcome of a task another server ran: ``task.updated`` to the user's
        sessions here (a live task is held here from now on)."""
        live = await self._live(task.id) if task.status in LIVE else Live(task)
        self.log.info("task_outcome_followed", task_id=task.id, status=task.status)
        await self._updated(live)
