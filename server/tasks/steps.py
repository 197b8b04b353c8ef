"""The step state machine of a screen task: read the screen (one VLM call), guard against
payment screens, store and preview the next action, settle an executed one (verified by
the screen diff and the next reading), and the terminal states (failed with options,
blocked at payment, completed). Every status is stored before the event that reports it.
Mixed into TaskRunner (runner.py), which takes the user's and the client's commands."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import numpy as np

from analysis.screen import InvalidImage, image_hash
from server.config import Settings
from server.store.base import Store, TaskActionRecord, TaskRecord, TaskStatus, utcnow
from server.tasks.payment import PaymentVerdict, check_payment
from server.tasks.planner import Plan, PlanFailed, Planner
from server.tasks.state import LIVE, Live, TaskError
from server.tasks.verifier import ScreenDiff, screen_thumb
from server.tasks.views import FAILURE_OPTIONS, preview_json, task_json


class TaskSteps:
    user_id: str
    store: Store
    planner: Planner | None
    settings: Settings
    log: Any
    _lock: asyncio.Lock

    emit: Callable[[dict[str, Any]], Awaitable[None]]  # TaskFeed's fan-out

    def _planner(self) -> Planner:
        if self.planner is None:
            raise TaskError(
                503,
                "vision_unavailable",
                "Screen tasks need a vision model: set VLM_BASE_URL and VLM_MODEL "
                "(or LLM_BASE_URL) and VLM_ENABLED=true.",
            )
        return self.planner

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

    async def _plan_locked(self, live: Live, image: bytes, thumb: np.ndarray | None = None) -> None:
        async with self._lock:
            await self._plan(live, image, time.perf_counter(), thumb)

    async def _plan(
        self, live: Live, image: bytes, t0: float, thumb: np.ndarray | None = None
    ) -> None:
        """Read the screen and preview the next action (or block, or complete)."""
        if thumb is None:
            thumb = await self._thumb(image)
        plan = await self._analyze(live, image)
        if plan is None:
            return
        await self._advance(live, image, thumb, plan, t0)

    async def _thumb(self, image: bytes) -> np.ndarray:
        try:
            return await asyncio.to_thread(screen_thumb, image)
        except InvalidImage as e:
            raise TaskError(400, "invalid_image", f"The screenshot is not an image: {e}.") from e

    async def _analyze(
        self, live: Live, image: bytes, verifying: TaskActionRecord | None = None
    ) -> Plan | None:
        t = live.task
        live.busy = True
        try:
            plan = await self._planner().analyze(
                image,
                app_name=t.app_name,
                task=t.description,
                step=t.current_step + 1,
                previous=verifying.target_element.get("description") if verifying else None,
                expected=verifying.details.get("expected_next_screen") if verifying else None,
            )
        except PlanFailed as e:
            live.busy = False
            self.log.error("task_analysis_failed", task_id=t.id, reason=e.reason, error=e.message)
            if live.task.status == "running":
                step = t.current_step + 1  # a failed reading counts as a try of the step
                live.tries[step] = live.tries.get(step, 0) + 1
                await self._fail(live, e.reason, f"The screen could not be read: {e.message}")
            return None
        live.busy = False
        if live.task.status != "running":  # paused or cancelled while the VLM was reading
            return None
        return plan

    async def _advance(
        self,
        live: Live,
        image: bytes,
        thumb: np.ndarray,
        plan: Plan,
        t0: float,
        verified: TaskActionRecord | None = None,
        diff: ScreenDiff | None = None,
    ) -> None:
        a = plan.analysis
        verdict = check_payment(a)
        if verified is not None:
            ok = a.matches_expected_screen
            await self._settle(live, verified, ok, "wrong_screen", diff, a.current_screen)
            if not ok and not verdict.blocked:
                await self._fail(
                    live,
                    "wrong_screen",
                    f"After '{verified.target_element.get('target')}' the screen is "
                    f"'{a.current_screen}', not what was expected "
                    f"('{verified.details.get('expected_next_screen')}').",
                    verified,
                )
                return
        if verdict.blocked:
            server_ms = (time.perf_counter() - t0) * 1000 - plan.vlm_ms
            await self._block(live, a.current_screen, verdict, plan.vlm_ms, server_ms)
            return
        rec = a.recommended_action
        if a.task_complete or rec.type == "none":
            await self._complete(live)
            return
        step = live.task.current_step + 1
        live.tries[step] = live.tries.get(step, 0) + 1
        if live.task.current_step == 0 and live.tries[step] == 1:
            await self.store.update_task_route(
                self.user_id, live.task.id, planned_route=a.remaining_plan
            )
        ref = await self._keep_screenshot(live.task.id, step, live.tries[step], image)
        server_ms = (time.perf_counter() - t0) * 1000 - plan.vlm_ms
        action = await self.store.add_task_action(
            self.user_id,
            live.task.id,
            step,
            rec.type,
            {
                "target": rec.target,
                "coordinates": rec.coordinates.model_dump(),
                "text": rec.text,
                "description": rec.description,
                "reasoning": rec.reasoning,
                "final": a.is_last_step,
                "confidence": _confidence(a, rec.target),
            },
            screenshot_ref=ref,
            details={
                "attempt": live.tries[step],
                "screen": a.current_screen,
                "expected_next_screen": a.expected_next_screen,
                "vlm_ms": round(plan.vlm_ms, 1),
                "server_ms": round(server_ms, 1),
                "vlm_tries": plan.tries,
                "screen_hash": image_hash(thumb),
            },
        )
        live.pending, live.screen, live.thumb = action, image, thumb
        live.previewed_at, live.approved_at = time.monotonic(), None
        await self.emit(
            {"type": "task.action_preview", "task_id": live.task.id} | preview_json(action)
        )

    async def _keep_screenshot(self, task_id: str, step: int, attempt: int, image: bytes) -> str:
        """The screenshot reference stored with the action: a file under DATA_DIR/tasks/."""
        name = (
            f"{step:03d}-{attempt}.jpg"
            if image[:3] == b"\xff\xd8\xff"
            else f"{step:03d}-{attempt}.png"
        )
        rel = f"tasks/{task_id}/{name}"
        if self.settings.task_keep_screenshots:
            path = self.settings.data_dir / rel
            await asyncio.to_thread(_write_file, path, image)
        return rel

    async def _settle(
        self,
        live: Live,
        action: TaskActionRecord,
        ok: bool,
        reason: str,
        diff: ScreenDiff | None,
        screen_after: str | None,
    ) -> None:
        """The verdict on an executed action: stored, routed, reported."""
        started = live.approved_at or live.previewed_at
        exec_ms = round((time.monotonic() - started) * 1000) if started else None
        details = {**action.details, "diff": diff.as_dict() if diff else None}
        details["screen_after"] = screen_after
        if not ok:
            details["reason"] = reason
        status = "success" if ok else "failed"
        await self.store.update_task_action(
            self.user_id,
            live.task.id,
            action.id,
            status=status,
            execution_time_ms=exec_ms,
            details=details,
            only_if_status=("pending",),
        )
        action.status, action.details, action.execution_time_ms = status, details, exec_ms
        live.pending = None
        if ok:
            await self.store.update_task_route(
                self.user_id,
                live.task.id,
                append_actual={
                    "step": action.step_number,
                    "screen": action.details.get("screen"),
                    "action": action.target_element.get("target"),
                    "action_type": action.action_type,
                    "screen_after": screen_after,
                    "at": utcnow().isoformat(),
                },
            )
            live.task.current_step = action.step_number
            await self.store.update_task(
                self.user_id, live.task.id, current_step=action.step_number
            )
        await self.emit(
            {
                "type": "task.action_result",
                "task_id": live.task.id,
                "action_id": action.id,
                "step": action.step_number,
                "status": status,
                "reason": None if ok else reason,
                "execution_time_ms": exec_ms,
                "diff": details["diff"],
            }
        )

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
    return {"status": j["status"], "step": j["current_step"], "failure": j["failure"]}


def _confidence(a: Any, target: str) -> float | None:
    for x in a.available_actions:
        if x.element == target:
            return x.confidence
    return None


def _write_file(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
