"""The step state machine of a screen task: read the screen (one VLM call), guard against
payment screens, store and preview the next action, settle an executed one (verified by
the screen diff and the next reading). How steps and tasks end is in outcomes.py. Mixed
into TaskRunner (runner.py), which takes the user's and the client's commands."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

import numpy as np

from analysis.screen import InvalidImage, image_hash
from server.store.base import NewTaskAction, TaskActionRecord, utcnow
from server.tasks.outcomes import TaskOutcomes
from server.tasks.payment import check_payment
from server.tasks.planner import Plan, PlanFailed, Planner
from server.tasks.state import Live, TaskError
from server.tasks.verifier import ScreenDiff, check_screen
from server.tasks.views import preview_json


class TaskSteps(TaskOutcomes):
    """Planning, previewing and verifying steps."""

    planner: Planner | None
    _lock: asyncio.Lock

    def _planner(self) -> Planner:
        if self.planner is None:
            raise TaskError(
                503,
                "vision_unavailable",
                "Screen tasks need a vision model: set VLM_BASE_URL and VLM_MODEL "
                "(or LLM_BASE_URL) and VLM_ENABLED=true.",
            )
        return self.planner

    async def _plan_locked(self, live: Live, image: bytes, thumb: np.ndarray | None = None) -> None:
        async with self._lock:
            await self._plan(live, image, time.perf_counter(), thumb)

    async def _plan(
        self, live: Live, image: bytes, t0: float, thumb: np.ndarray | None = None
    ) -> None:
        """Read the screen and preview the next action (or block, or complete)."""
        reading = self._read(live, image)  # the decode below runs while the VLM reads
        if thumb is None:
            try:
                thumb = await self._thumb(image)
            except BaseException:
                await self._drop(live, reading)
                raise
        plan = await self._analyze(live, image, reading=reading)
        if plan is None:
            return
        await self._advance(live, image, thumb, plan, t0)

    async def _thumb(self, image: bytes) -> np.ndarray:
        thumb, _ = await self._check_screen(None, image)
        return thumb

    async def _check_screen(
        self, before: np.ndarray | None, image: bytes
    ) -> tuple[np.ndarray, ScreenDiff | None]:
        """Decode the screen and compare it with ``before``, in one trip to a thread."""
        s = self.settings
        try:
            return await asyncio.to_thread(
                check_screen, before, image, s.task_change_threshold, s.task_cell_threshold
            )
        except InvalidImage as e:
            raise TaskError(400, "invalid_image", f"The screenshot is not an image: {e}.") from e

    def _read(
        self, live: Live, image: bytes, verifying: TaskActionRecord | None = None
    ) -> asyncio.Future[Plan]:
        """The VLM's reading of the screen (for the next step, or checking the step just
        done against the expected screen), started now; _analyze takes its outcome."""
        t = live.task
        planner = self._planner()
        live.busy = True
        return asyncio.ensure_future(
            planner.analyze(
                image,
                app_name=t.app_name,
                task=t.description,
                step=t.current_step + 1,
                previous=verifying.target_element.get("description") if verifying else None,
                expected=verifying.details.get("expected_next_screen") if verifying else None,
            )
        )

    async def _analyze(
        self,
        live: Live,
        image: bytes,
        verifying: TaskActionRecord | None = None,
        reading: asyncio.Future[Plan] | None = None,
    ) -> Plan | None:
        t = live.task
        try:
            plan = await (reading or self._read(live, image, verifying))
        except PlanFailed as e:
            live.busy = False
            self.log.error("task_analysis_failed", task_id=t.id, reason=e.reason, error=e.message)
            if live.task.status == "running":
                step = t.current_step + 1  # a failed reading counts as a try of the step
                live.tries[step] = live.tries.get(step, 0) + 1
                await self._fail(live, e.reason, f"The screen could not be read: {e.message}")
            return None
        finally:
            live.busy = False
        if live.task.status != "running":  # paused or cancelled while the VLM was reading
            return None
        return plan

    @staticmethod
    async def _drop(live: Live, reading: asyncio.Future[Plan]) -> None:
        """A reading no longer needed (the screen did not change, or is no image)."""
        reading.cancel()
        with contextlib.suppress(asyncio.CancelledError, PlanFailed):
            await reading
        live.busy = False

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
        """After a reading: the verdict on the action just done (if any), then the payment
        stop, the end, or the next action. A verified action followed by a next one is
        stored in one write with it (one commit per step)."""
        a = plan.analysis
        verdict = check_payment(a)
        rec = a.recommended_action
        goes_on = not verdict.blocked and not (a.task_complete or rec.type == "none")
        ok = verified is None or a.matches_expected_screen
        if verified is not None and not (ok and goes_on):
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
        if not goes_on:
            await self._complete(live)
            return
        done = verified.step_number if verified is not None else live.task.current_step
        step = done + 1
        live.tries[step] = live.tries.get(step, 0) + 1
        writes: list[Awaitable[Any]] = []  # alongside the store's write of the step
        if done == 0 and live.tries[step] == 1:
            writes.append(
                self.store.update_task_route(
                    self.user_id, live.task.id, planned_route=a.remaining_plan
                )
            )
        ref, write = self._keep_screenshot(live.task.id, step, live.tries[step], image)
        if write is not None:
            writes.append(write)
        server_ms = (time.perf_counter() - t0) * 1000 - plan.vlm_ms
        new = NewTaskAction(
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
                "server_ms": round(server_ms, 1),  # until stored: set below, kept at settle
                "vlm_tries": plan.tries,
                "screen_hash": image_hash(thumb),
            },
        )
        if verified is not None:
            action = await self._settle(
                live, verified, True, "", diff, a.current_screen, then_add=new, alongside=writes
            )
        else:
            action, *_ = await asyncio.gather(
                self.store.add_task_action(
                    self.user_id,
                    live.task.id,
                    new.step_number,
                    new.action_type,
                    new.target_element,
                    screenshot_ref=new.screenshot_ref,
                    details=new.details,
                ),
                *writes,
            )
        assert action is not None
        # the whole step up to the preview, the writes included (stored with the verdict)
        action.details["server_ms"] = round((time.perf_counter() - t0) * 1000 - plan.vlm_ms, 1)
        live.pending, live.screen, live.thumb = action, image, thumb
        live.previewed_at, live.approved_at = time.monotonic(), None
        await self.emit(
            {"type": "task.action_preview", "task_id": live.task.id} | preview_json(action)
        )
        await self._ask_approval(live, action)

    def _keep_screenshot(
        self, task_id: str, step: int, attempt: int, image: bytes
    ) -> tuple[str, Awaitable[None] | None]:
        """The screenshot reference stored with the action (a file under DATA_DIR/tasks/),
        and the file's write, to await alongside the store's."""
        name = (
            f"{step:03d}-{attempt}.jpg"
            if image[:3] == b"\xff\xd8\xff"
            else f"{step:03d}-{attempt}.png"
        )
        rel = f"tasks/{task_id}/{name}"
        if not self.settings.task_keep_screenshots:
            return rel, None
        return rel, asyncio.to_thread(_write_file, self.settings.data_dir / rel, image)

    async def _settle(
        self,
        live: Live,
        action: TaskActionRecord,
        ok: bool,
        reason: str,
        diff: ScreenDiff | None,
        screen_after: str | None,
        then_add: NewTaskAction | None = None,
        alongside: list[Awaitable[Any]] | None = None,
    ) -> TaskActionRecord | None:
        """The verdict on an executed action: stored (with its route entry, the task's step
        and ``then_add``, the next action, in one write), then reported. Returns the added
        action."""
        started = live.approved_at or live.previewed_at
        exec_ms = round((time.monotonic() - started) * 1000) if started else None
        details = {**action.details, "diff": diff.as_dict() if diff else None}
        details["screen_after"] = screen_after
        if not ok:
            details["reason"] = reason
        status = "success" if ok else "failed"
        route_step = None
        if ok:
            route_step = {
                "step": action.step_number,
                "screen": action.details.get("screen"),
                "action": action.target_element.get("target"),
                "action_type": action.action_type,
                "screen_after": screen_after,
                "at": utcnow().isoformat(),
            }
        (settled, added), *_ = await asyncio.gather(
            self.store.settle_task_action(
                self.user_id,
                live.task.id,
                action.id,
                status=status,
                execution_time_ms=exec_ms,
                details=details,
                append_actual=route_step,
                current_step=action.step_number if ok else None,
                then_add=then_add,
            ),
            *(alongside or []),
        )
        live.pending = None
        if not settled:  # withdrawn meanwhile (a cancel): its verdict is already stored
            raise TaskError(409, "not_pending", "That action was already settled.")
        action.status, action.details, action.execution_time_ms = status, details, exec_ms
        if ok:
            live.task.current_step = action.step_number
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
        return added


def _confidence(a: Any, target: str) -> float | None:
    for x in a.available_actions:
        if x.element == target:
            return x.confidence
    return None


def _write_file(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
