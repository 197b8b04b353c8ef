"""How a screen task's steps and the task end: status changes (stored first, conditionally,
then reported), a step failed with its options, the stop at a payment screen, completion,
a withdrawn action, and the checks a command needs. Every status is stored before the
event that reports it. Mixed into TaskRunner through TaskSteps."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from server.config import Settings
from server.store.base import Store, TaskActionRecord, TaskRecord, TaskStatus, utcnow
from server.tasks.approval import TaskApprovals
from server.tasks.payment import PaymentVerdict
from server.tasks.state import LIVE, Live, TaskError
from server.tasks.views import FAILURE_OPTIONS, task_json


class TaskOutcomes(TaskApprovals):
    user_id: str
    store: Store
    settings: Settings
    log: Any

    emit: Callable[[dict[str, Any]], Awaitable[None]]  # TaskFeed's fan-out

    async def _set_status(
        self, live: Live, status: TaskStatus, *, only_if: tuple[TaskStatus, ...], **details: Any
    ) -> None:
        """Stored first (conditionally: of two racing requests one wins), then in memory."""
        new_details = {**live.task.details, **details}
        ended = utcnow() if status not in LIVE else None
        ok = await self.store.update_task(
            self.user_id,
            live.task.id,
            status=status,
            details=new_details,
            ended_at=ended,
            only_if_status=only_if,
        )
        if not ok:
            fresh = await self.store.get_task(self.user_id, live.task.id)
            now = fresh.status if fresh else "deleted"
            raise TaskError(409, "invalid_state", f"The task is {now}; it cannot become {status}.")
        live.task.status = status
        live.task.details = new_details
        live.task.ended_at = ended
        live.task.updated_at = utcnow()

    async def _updated(self, live: Live) -> None:
        t = live.task
        await self.emit({"type": "task.updated", "task_id": t.id, **_brief(t)})

    async def _fail(
        self, live: Live, reason: str, message: str, action: TaskActionRecord | None = None
    ) -> None:
        step = action.step_number if action else live.task.current_step + 1
        left = max(0, self.settings.task_max_retries - (live.tries.get(step, 1) - 1))
        options = [o for o in FAILURE_OPTIONS if o != "retry" or left > 0]
        failure = {
            "reason": reason,
            "message": message,
            "action_id": action.id if action else None,
            "step": step,
            "options": options,
            "retries_left": left,
        }
        await self._set_status(live, "failed", only_if=("running",), failure=failure)
        self.log.warning("task_step_failed", task_id=live.task.id, reason=reason, step=step)
        await self._updated(live)
        await self.emit({"type": "task.failed", "task_id": live.task.id, **failure})

    async def _block(
        self, live: Live, screen: str, verdict: PaymentVerdict, vlm_ms: float, server_ms: float
    ) -> None:
        blocked = {
            "reason": "payment_screen",
            "screen": screen,
            "signals": verdict.reasons,
            "evidence": verdict.evidence,
            "vlm_ms": round(vlm_ms, 1),
            "server_ms": round(server_ms, 1),
        }
        live.pending = None
        await self._set_status(live, "blocked_payment", only_if=("running",), blocked=blocked)
        self.log.critical(
            "task_blocked_payment_screen",
            task_id=live.task.id,
            step=live.task.current_step,
            signals=verdict.reasons,
        )
        await self._updated(live)
        await self.emit({"type": "task.blocked", "task_id": live.task.id, **blocked})

    async def _complete(self, live: Live) -> None:
        live.pending = None
        await self._set_status(live, "completed", only_if=("running",))
        self.log.info("task_completed", task_id=live.task.id, steps=live.task.current_step)
        await self._updated(live)
        await self.emit(
            {"type": "task.done", "task_id": live.task.id, "status": "completed", "home": None}
        )

    async def _withdraw(self, live: Live, reason: str) -> None:
        a = live.pending
        live.pending, live.approved_at = None, None
        if a is None:
            return
        # an answer settled it already; else it is no longer asked
        await self._settle_approval(a.id, "expired", f"The action was withdrawn ({reason}).")
        a.status, a.details = "failed", {**a.details, "reason": reason}
        await self.store.update_task_action(
            self.user_id,
            live.task.id,
            a.id,
            status="failed",
            details=a.details,
            only_if_status=("pending",),
        )
        await self.emit(
            {
                "type": "task.action_result",
                "task_id": live.task.id,
                "action_id": a.id,
                "step": a.step_number,
                "status": "failed",
                "reason": reason,
                "execution_time_ms": None,
                "diff": None,
            }
        )

    @staticmethod
    def _require(live: Live, status: TaskStatus) -> None:
        if live.task.status != status:
            raise TaskError(
                409, "invalid_state", f"The task is {live.task.status}; this needs it {status}."
            )

    @staticmethod
    def _pending(live: Live, action_id: str) -> TaskActionRecord:
        a = live.pending
        if a is None or a.id != action_id:
            raise TaskError(
                409,
                "not_pending",
                "That action is not the one waiting for confirmation"
                + (f" ({a.id})." if a else " (none is)."),
            )
        return a


def _brief(t: TaskRecord) -> dict[str, Any]:
    j = task_json(t)
    brief = {"status": j["status"], "step": j["current_step"], "failure": j["failure"]}
    return brief | ({"interrupted": j["interrupted"]} if j["interrupted"] else {})
