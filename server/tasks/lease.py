"""Which server holds a user's running screen task (REPLICA_MODE=multi), so a server that
dies mid-step does not leave the task ``running`` for ever.

The server holding the task renews its lease (``lease_until`` in the store) when it takes
the task and then every third of TASK_LEASE_S (TaskRunners' keeper). A server killed mid-step
(kill -9, power loss) stops renewing. The server the user's session resumes on follows the
task (handover.py); once the lease lapsed it stores the task ``paused`` with ``interrupted``
in its details (reason ``server_lost``, the step, a message for the user) in one conditional
write that a renewal meanwhile beats, withdraws the step's action (reason ``interrupted``)
and tells the user's sessions, who can resume (the screen is read again) or cancel. A late
report of the action is refused (the task is not running), so nothing runs twice. A server
that was only stalled finds its renewal refused and takes the stored task back as it is.

A session that moved while its server lives is handed over by that server (handover.py);
this is the case where nobody is left to do that. Replicas' clocks must agree to well under
TASK_LEASE_S (the lease is written with the holder's clock, read with the follower's)."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import TYPE_CHECKING

from server.config import Settings
from server.store.base import Store, TaskRecord, utcnow
from server.tasks.state import Live

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from structlog.typing import FilteringBoundLogger


class TaskLease:
    """Mixed into TaskRunner (through TaskHandover)."""

    user_id: str
    store: Store
    settings: Settings
    live: Live | None
    log: FilteringBoundLogger
    _lock: asyncio.Lock
    _live: Callable[[str], Awaitable[Live]]
    _withdraw: Callable[[Live, str], Awaitable[None]]
    _updated: Callable[[Live], Awaitable[None]]

    async def hold(self, live: Live) -> bool:
        """This server holds the running task for TASK_LEASE_S more (REPLICA_MODE=multi).
        False when the store says it is not running any more."""
        if self.settings.replica_mode != "multi" or live.task.status != "running":
            return True
        until = utcnow() + timedelta(seconds=self.settings.task_lease_s)
        if not await self.store.renew_task_lease(self.user_id, live.task.id, until):
            return False
        live.task.lease_until = until
        return True

    async def keep_lease(self) -> None:
        """The keeper's beat: the live task's lease is renewed; one refused (another server
        paused the task while this one was stalled) leaves the stored task in memory."""
        live = self.live
        if live is None or live.task.status != "running" or await self.hold(live):
            return
        fresh = await self.store.get_task(self.user_id, live.task.id)
        if fresh is not None and self.live is live:
            live.task = fresh
            live.pending, live.approved_at = None, None
        self.log.warning("task_lease_lost", task_id=live.task.id)

    def lease_lapsed(self, task: TaskRecord) -> bool:
        """Nobody renewed this running task's lease in time, nor changed the task for as
        long (a task resumed or never held yet counts from its last change)."""
        changed = task.updated_at + timedelta(seconds=self.settings.task_lease_s)
        return utcnow() >= max(task.lease_until or changed, changed)

    async def interrupt_lapsed(self, task: TaskRecord) -> bool:
        """A running task whose holder died: paused with the reason, its step's action
        withdrawn, the user's sessions here told. True when this server did it."""
        if not self.lease_lapsed(task):
            return False
        step = task.current_step + 1
        interrupted = {
            "reason": "server_lost",
            "step": step,
            "message": f"Step {step} was stopped because the server running it stopped "
            "responding; resume to read the screen again, or cancel the task.",
        }
        details = {**task.details, "interrupted": interrupted}
        if not await self.store.pause_lapsed_task(self.user_id, task, details):
            return False  # renewed or changed meanwhile, or paused or ended by someone else
        self.log.info("task_step_interrupted", task_id=task.id, step=step, reason="server_lost")
        live = await self._live(task.id)  # the stored task (paused) and its pending action
        async with self._lock:
            if live.pending is not None:
                await self._withdraw(live, "interrupted")
        await self._updated(live)
        return True


async def keep_leases(runners: Callable[[], list[TaskLease]], settings: Settings) -> None:
    """Every third of TASK_LEASE_S, each runner renews its live task's lease (until
    cancelled); a failing store is logged and tried again next time."""
    while True:
        await asyncio.sleep(settings.task_lease_s / 3)
        for runner in runners():
            try:
                await runner.keep_lease()
            except Exception as e:
                runner.log.warning("task_lease_renew_failed", error=f"{type(e).__name__}: {e}")
