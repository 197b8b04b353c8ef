"""The task runner: one per user (TaskRunners, in Services). It keeps the user's live task,
the latest screen frame its sessions sent, and the sessions listening for task events.

A step: the planner reads the screen (one VLM call) -> the payment guard -> a pending action
is stored and previewed -> the user says yes (task.action_execute) -> the client executes and
reports -> the verifier compares the screens and the next VLM call checks the expected screen
-> the action succeeds (and the next one is previewed) or the task fails with options.
Every status is stored before the event that reports it is sent."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from analysis.screen import InvalidImage, image_hash
from server.config import Settings
from server.logging import get_logger, redact
from server.providers.vlm import VisionClient
from server.store.base import Store, TaskActionRecord, TaskRecord, TaskStatus, utcnow
from server.tasks.payment import PaymentVerdict, check_payment
from server.tasks.planner import Plan, PlanFailed, Planner
from server.tasks.verifier import ScreenDiff, compare, screen_thumb
from server.tasks.views import (
    FAILURE_OPTIONS,
    NO,
    YES,
    home_route,
    preview_json,
    task_json,
)

log = get_logger(__name__)
LIVE: tuple[TaskStatus, ...] = ("running", "paused", "failed")
Listener = Callable[[dict[str, Any]], Awaitable[None]]


class TaskError(Exception):
    """A request the task cannot take now: HTTP status, a code and a clear message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@dataclass
class Frame:
    image: bytes
    seq: int


@dataclass
class Live:
    """What the runner holds in memory about the live task (the store holds the rest)."""

    task: TaskRecord
    screen: bytes | None = None  # the screen the pending action was planned on
    thumb: np.ndarray | None = None
    pending: TaskActionRecord | None = None
    previewed_at: float = 0.0
    approved_at: float | None = None
    tries: dict[int, int] = field(default_factory=dict)  # step -> actions tried
    busy: bool = False
    waiting_for_screen: bool = False


class TaskRunner:
    def __init__(
        self, user_id: str, store: Store, planner: Planner | None, settings: Settings
    ) -> None:
        self.user_id = user_id
        self.store = store
        self.planner = planner
        self.settings = settings
        self.listeners: set[Listener] = set()
        self.frame: Frame | None = None
        self._seq = 0
        self._new_frame = asyncio.Event()
        self.live: Live | None = None
        self._lock = asyncio.Lock()
        self._start_lock = asyncio.Lock()
        self._background: set[asyncio.Task[Any]] = set()
        self.log = log.bind(user_id=user_id)

    # --- wiring: sessions, frames, speech --------------------------------------------------
    def attach(self, listener: Listener) -> Callable[[], None]:
        """A session listens for task events; call the result to stop."""
        self.listeners.add(listener)
        return lambda: self.listeners.discard(listener)

    async def emit(self, event: dict[str, Any]) -> None:
        """To every attached session; one that fails (e.g. a client too slow to read) does
        not stop the task or the others."""
        for listener in list(self.listeners):
            try:
                await listener(event)
            except Exception as e:
                self.log.warning("task_event_not_delivered", error=type(e).__name__)

    @property
    def seq(self) -> int:
        """The number of the latest screen frame (0: none yet)."""
        return self._seq

    def on_frame(self, image: bytes) -> None:
        """A session's screen frame (latest wins). Starts planning when a task waits for one."""
        self._seq += 1
        self.frame = Frame(image, self._seq)
        ev, self._new_frame = self._new_frame, asyncio.Event()
        ev.set()
        live = self.live
        if live and live.task.status == "running" and live.waiting_for_screen and not live.busy:
            live.waiting_for_screen = False
            self.spawn(self._quiet(self._plan_locked(live, image)))

    def hear(self, text: str) -> bool:
        """A user turn (spoken or typed): a yes approves the previewed action, a no declines
        it. True when it answered a pending question; the turn itself still runs."""
        live = self.live
        if not live or live.pending is None or live.approved_at is not None:
            return False
        if live.task.status != "running":
            return False
        if YES.match(text):
            self.spawn(self._quiet(self.approve(live.task.id, live.pending.id)))
            return True
        if NO.match(text):
            self.spawn(self._quiet(self.approve(live.task.id, live.pending.id, False)))
            return True
        return False

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    async def _quiet(self, coro: Awaitable[Any]) -> None:
        """Background work (from frames or speech): a refusal becomes a task.error event."""
        try:
            await coro
        except TaskError as e:
            await self.emit({"type": "task.error", "code": e.code, "message": e.message})
        except Exception:
            self.log.exception("task_background_failed")
            await self.emit(
                {"type": "task.error", "code": "internal_error", "message": "A server error."}
            )

    async def close(self) -> None:
        for t in list(self._background):
            t.cancel()

    # --- lifecycle ---------------------------------------------------------------------------
    def _planner(self) -> Planner:
        if self.planner is None:
            raise TaskError(
                503,
                "vision_unavailable",
                "Screen tasks need a vision model: set VLM_BASE_URL and VLM_MODEL "
                "(or LLM_BASE_URL) and VLM_ENABLED=true.",
            )
        return self.planner

    async def start(
        self, app_name: str, description: str, screenshot: bytes | None
    ) -> tuple[TaskRecord, TaskActionRecord | None]:
        self._planner()
        thumb = await self._thumb(screenshot) if screenshot is not None else None
        async with self._start_lock:  # two racing starts: one task, one 409
            if self.live and self.live.task.status in LIVE:
                t = self.live.task
                raise TaskError(
                    409,
                    "task_in_progress",
                    f"Task {t.id} is still {t.status}: cancel it (or finish it) first.",
                )
            task = await self.store.create_task(self.user_id, app_name, description)
            live = self.live = Live(task)
        self.log.info(
            "task_started",
            task_id=task.id,
            app=app_name,
            task=redact(description, self.settings.log_pii),
        )
        await self._updated(live)
        image = screenshot or (self.frame.image if self.frame else None)
        if image is None:
            live.waiting_for_screen = True
            return task, None
        await self._plan_locked(live, image, thumb)
        return live.task, live.pending

    async def _live(self, task_id: str) -> Live:
        """The live task by id; a task left running by an earlier process is picked up."""
        live = self.live
        if live is not None and live.task.id == task_id:
            return live
        task = await self.store.get_task(self.user_id, task_id)
        if task is None:
            raise TaskError(404, "not_found", "No such task for this user.")
        if task.status not in LIVE:
            raise TaskError(409, "task_ended", f"The task is {task.status}.")
        if live is not None and live.task.status in LIVE:
            raise TaskError(409, "task_in_progress", f"Task {live.task.id} is the live task.")
        live = self.live = Live(task)
        actions = await self.store.list_task_actions(self.user_id, task_id)
        pending = [a for a in actions if a.status == "pending"]
        live.pending = pending[-1] if pending else None
        for a in actions:
            live.tries[a.step_number] = live.tries.get(a.step_number, 0) + 1
        return live

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

    # --- planning ----------------------------------------------------------------------------
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

    # --- the user's and the client's answers ---------------------------------------------------
    async def next_action(self, task_id: str, screenshot: bytes | None) -> TaskActionRecord | None:
        """Plan from this screenshot (or the latest frame); a pending action is superseded.
        On a failed task this is a retry (bounded the same way)."""
        live = await self._live(task_id)
        if live.task.status == "failed":
            return await self.retry(task_id, None, screenshot)
        self._require(live, "running")
        image = screenshot or (self.frame.image if self.frame else None)
        if image is None:
            raise TaskError(
                409, "no_screen", "No screen yet: send a screenshot or share the screen."
            )
        async with self._lock:
            if live.pending is not None:
                await self._withdraw(live, "superseded")
            await self._plan(live, image, time.perf_counter())
        return live.pending

    async def approve(self, task_id: str, action_id: str, yes: bool = True) -> None:
        """The user's answer to a preview (a yes spoken or clicked): on yes the client is told
        to execute (task.action_execute); on no the action is withdrawn and the task paused."""
        live = await self._live(task_id)
        self._require(live, "running")
        action = self._pending(live, action_id)
        if not yes:
            await self._withdraw(live, "declined")
            await self._set_status(live, "paused", only_if=("running",))
            await self._updated(live)
            return
        live.approved_at = time.monotonic()
        await self.emit({"type": "task.action_execute", "task_id": task_id} | preview_json(action))

    async def confirm(
        self,
        task_id: str,
        action_id: str,
        executed: bool,
        screenshot: bytes | None,
        after_seq: int | None = None,
    ) -> TaskActionRecord:
        """The client executed the action (or not). The screen after it is the screenshot
        given, else the first frame a session sends after the report (frame number
        ``after_seq``, by default now), waiting TASK_SCREEN_WAIT_S at most."""
        seq = self._seq if after_seq is None else after_seq
        live = await self._live(task_id)
        self._require(live, "running")
        action = self._pending(live, action_id)
        if not executed:
            await self._withdraw(live, "declined")
            await self._set_status(live, "paused", only_if=("running",))
            await self._updated(live)
            return action
        t_wait = time.perf_counter()
        after = screenshot or await self._next_frame(seq)
        t0 = time.perf_counter() if screenshot is None else t_wait
        async with self._lock:
            if live.pending is None or live.pending.id != action_id:
                raise TaskError(409, "not_pending", "That action was already settled.")
            thumb = await self._thumb(after)
            diff = None
            if live.thumb is not None and live.thumb.shape == thumb.shape:
                s = self.settings
                diff = await asyncio.to_thread(
                    compare, live.thumb, thumb, s.task_change_threshold, s.task_cell_threshold
                )
                if not diff.changed:
                    await self._settle(live, action, False, "no_change", diff, None)
                    await self._fail(
                        live,
                        "no_change",
                        f"Nothing changed on the screen after "
                        f"'{action.target_element.get('target')}'.",
                        action,
                    )
                    return action
            plan = await self._analyze(live, after, verifying=action)
            if plan is None:  # the VLM failed (task failed) or the task was paused meanwhile
                if live.pending is action and live.task.status == "failed":
                    await self._withdraw(live, live.task.details["failure"]["reason"])
                return action
            await self._advance(live, after, thumb, plan, t0, verified=action, diff=diff)
        return action

    async def _next_frame(self, after_seq: int) -> bytes:
        deadline = time.monotonic() + self.settings.task_screen_wait_s
        while self.frame is None or self.frame.seq <= after_seq:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TaskError(
                    409,
                    "no_screen",
                    f"No screen arrived within {self.settings.task_screen_wait_s:g} s after the "
                    "action (TASK_SCREEN_WAIT_S): send a screenshot with the confirmation.",
                )
            try:
                await asyncio.wait_for(self._new_frame.wait(), left)
            except TimeoutError:
                continue
        return self.frame.image

    async def retry(
        self, task_id: str, action_id: str | None = None, screenshot: bytes | None = None
    ) -> TaskActionRecord | None:
        """Repeat the failed step: re-read the current screen and preview it again."""
        live = await self._live(task_id)
        failure = live.task.details.get("failure") or {}
        if live.task.status != "failed":
            raise TaskError(409, "not_failed", f"The task is {live.task.status}, not failed.")
        if action_id is not None and failure.get("action_id") not in (None, action_id):
            raise TaskError(409, "not_failed", "That is not the action that failed.")
        if failure.get("retries_left", 0) <= 0:
            raise TaskError(
                409,
                "no_retries_left",
                f"The step was tried {self.settings.task_max_retries + 1} times "
                "(MAX_RETRIES): take over by hand and resume, or cancel.",
            )
        image = screenshot or (self.frame.image if self.frame else None) or live.screen
        await self._set_status(live, "running", only_if=("failed",), failure=None)
        await self._updated(live)
        if image is None:
            live.waiting_for_screen = True
            return None
        await self._plan_locked(live, image)
        return live.pending

    async def pause(self, task_id: str) -> TaskRecord:
        live = await self._live(task_id)
        await self._set_status(live, "paused", only_if=("running", "failed"))
        self.log.info("task_paused", task_id=task_id)
        await self._updated(live)
        return live.task

    async def resume(self, task_id: str) -> TaskRecord:
        """Back to running; the pending preview is shown again, or the screen is re-read
        (after a take-over the user may have moved on by hand)."""
        live = await self._live(task_id)
        await self._set_status(live, "running", only_if=("paused",), failure=None)
        self.log.info("task_resumed", task_id=task_id)
        await self._updated(live)
        image = (self.frame.image if self.frame else None) or live.screen
        if live.pending is not None:
            await self._withdraw(live, "superseded")
        if image is None:
            live.waiting_for_screen = True
        else:
            await self._plan_locked(live, image)
        return live.task

    async def cancel(self, task_id: str) -> TaskRecord:
        """Stop for good and propose the way back to the app's start screen."""
        live = await self._live(task_id)
        if live.pending is not None:
            await self._withdraw(live, "cancelled")
        route = await self.store.get_task_route(self.user_id, task_id)
        home = home_route(route)
        await self._set_status(live, "cancelled", only_if=LIVE, home=home)
        self.log.info("task_cancelled", task_id=task_id)
        await self._updated(live)
        await self.emit(
            {"type": "task.done", "task_id": task_id, "status": "cancelled", "home": home}
        )
        return live.task

    async def forget(self, task_id: str) -> None:
        """The task was deleted."""
        if self.live is not None and self.live.task.id == task_id:
            if self.live.pending is not None:
                self.live.pending = None
            self.live.task.status = "cancelled"
            self.live = None

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


class TaskRunners:
    """Every user's runner, created on first use; lives in Services."""

    def __init__(self, store: Store, vision: VisionClient | None, settings: Settings) -> None:
        self.store = store
        self.planner = Planner(vision) if vision is not None else None
        self.settings = settings
        self._by_user: dict[str, TaskRunner] = {}

    def get(self, user_id: str) -> TaskRunner:
        runner = self._by_user.get(user_id)
        if runner is None:
            runner = TaskRunner(user_id, self.store, self.planner, self.settings)
            self._by_user[user_id] = runner
        return runner

    async def close(self) -> None:
        for runner in self._by_user.values():
            await runner.close()


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
