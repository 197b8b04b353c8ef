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

from server.config import Settings
from server.logging import redact
from server.providers.screen_capture import CaptureUnavailable, grab_jpeg, monitor_at
from server.providers.vlm import VisionClient
from server.store.base import Store, TaskActionRecord, TaskRecord
from server.tasks.desktop import DesktopUnavailable, perform
from server.tasks.feed import TaskFeed
from server.tasks.lease import keep_leases
from server.tasks.planner import Planner
from server.tasks.state import LIVE, Answered, Listener, Live, TaskError
from server.tasks.steps import TaskSteps
from server.tasks.views import NO, YES, home_route, preview_json

__all__ = ["Listener", "TaskError", "TaskRunner", "TaskRunners"]


class TaskRunner(TaskSteps, TaskFeed):
    """The user's commands on their live task (start, answer, confirm, retry, pause, resume,
    cancel), the screens and speech that feed it (TaskFeed), its steps (TaskSteps)."""

    def __init__(
        self, user_id: str, store: Store, planner: Planner | None, settings: Settings
    ) -> None:
        super().__init__(user_id)
        self.user_id = user_id
        self.store = store
        self.planner = planner
        self.settings = settings
        self.live: Live | None = None
        self._lock = asyncio.Lock()
        self._start_lock = asyncio.Lock()

    # --- frames and speech -------------------------------------------------------------------
    def on_frame(self, image: bytes) -> None:
        """A session's screen frame (latest wins). Starts planning when a task waits for one."""
        self.push_frame(image)
        live = self.live
        if live and live.task.status == "running" and live.waiting_for_screen and not live.busy:
            live.waiting_for_screen = False
            self.spawn(self.quiet(self._plan_locked(live, image)))

    @property
    def awaits_answer(self) -> bool:
        """A previewed action waits for the user's yes or no (``hear``)."""
        live = self.live
        return bool(
            live
            and live.pending is not None
            and live.approved_at is None
            and live.task.status == "running"
        )

    def hear(self, text: str) -> bool:
        """A user turn (spoken or typed): a yes approves the previewed action, a no declines
        it. True when it answered a pending question; the turn itself still runs."""
        live = self.live
        if not live or not self.awaits_answer:
            return False
        assert live.pending is not None
        if YES.match(text):
            self.spawn(self.quiet(self.approve(live.task.id, live.pending.id)))
            return True
        if NO.match(text):
            no = self.approve(live.task.id, live.pending.id, False, message=text)
            self.spawn(self.quiet(no))
            return True
        return False

    # --- lifecycle ---------------------------------------------------------------------------
    async def start(
        self, app_name: str, description: str, screenshot: bytes | None
    ) -> tuple[TaskRecord, TaskActionRecord | None]:
        self._planner()
        if screenshot is None and self.frame is None and self.settings.task_desktop_execute:
            screenshot = await self._grab_here()  # desktop mode: this machine's screen
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
            await self.hold(live)  # REPLICA_MODE=multi: held here (lease.py)
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
        await self.hold(live)
        actions = await self.store.list_task_actions(self.user_id, task_id)
        pending = [a for a in actions if a.status == "pending"]
        live.pending = pending[-1] if pending else None
        for a in actions:
            live.tries[a.step_number] = live.tries.get(a.step_number, 0) + 1
        return live

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

    async def approve(
        self,
        task_id: str,
        action_id: str,
        yes: bool = True,
        *,
        message: str | None = None,
        reason: str = "declined",
        answered: Answered | None = None,
    ) -> None:
        """The user's answer to a preview (a yes spoken or clicked, an approval.response):
        stored as the action's approval's decision, then on yes the client is told to execute
        (task.action_execute); on no the action is withdrawn and the task paused. A clicked
        answer is written into the session's history by ``answered`` before either (a spoken
        one is the user's turn)."""
        live = await self._live(task_id)
        self._require(live, "running")
        action = self._pending(live, action_id)
        settled = await self._settle_approval(
            action_id, "approved" if yes else "rejected", None if yes else message
        )
        if not settled:
            await self._settled_before(live, action_id, yes)
        if answered is not None and settled:  # (a repeated click is not a new answer)
            await answered(action, yes, message)
        if not yes:
            await self._withdraw(live, reason)
            await self._set_status(live, "paused", only_if=("running",))
            await self._updated(live)
            return
        live.approved_at = time.monotonic()
        await self.emit({"type": "task.action_execute", "task_id": task_id} | preview_json(action))
        if self.settings.task_desktop_execute:
            self.spawn(self.quiet(self._perform_here(task_id, action)))

    async def _perform_here(self, task_id: str, action: TaskActionRecord) -> None:
        """Desktop mode: perform the action on this machine's display, then confirm it with a
        grab of the screen after it (the same verification as a client's report)."""
        s = self.settings
        try:
            monitor = await asyncio.to_thread(monitor_at, s.screen_monitor)
            await asyncio.to_thread(perform, preview_json(action), monitor)
        except (CaptureUnavailable, DesktopUnavailable) as e:
            raise TaskError(
                503, "desktop_unavailable", f"The action was not performed: {e}."
            ) from None
        await self.confirm(task_id, action.id, True, await self._screen_after(action))

    async def _screen_after(self, action: TaskActionRecord) -> bytes:
        """This machine's screen once it changed after the action (grabbed every 100 ms), or
        as it is after TASK_DESKTOP_SETTLE_MS (the verification then says nothing changed)."""
        live = self.live
        before = live.thumb if live is not None and live.pending is action else None
        deadline = time.monotonic() + self.settings.task_desktop_settle_ms / 1000
        while True:
            await asyncio.sleep(0.1)
            after = await self._grab_here()
            if before is None or time.monotonic() >= deadline:
                return after
            _, diff = await self._check_screen(before, after)
            if diff is None or diff.changed:
                return after

    async def _grab_here(self) -> bytes:
        try:
            return await asyncio.to_thread(grab_jpeg, self.settings.screen_monitor)
        except CaptureUnavailable as e:
            raise TaskError(503, "desktop_unavailable", f"No screen to read: {e}.") from None

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
        # reporting it executed (or not) answers its approval too, when nothing else did
        await self._settle_approval(action_id, "approved" if executed else "rejected")
        if not executed:
            await self._withdraw(live, "declined")
            await self._set_status(live, "paused", only_if=("running",))
            await self._updated(live)
            return action
        t_wait = time.perf_counter()
        after = screenshot or await self.next_frame(seq, self.settings.task_screen_wait_s)
        t0 = time.perf_counter() if screenshot is None else t_wait
        async with self._lock:
            if live.pending is None or live.pending.id != action_id:
                raise TaskError(409, "not_pending", "That action was already settled.")
            # the VLM reads the new screen while a worker thread decodes and diffs it: the
            # diff costs no time of its own, and a screen that did not change drops the reading
            reading = self._read(live, after, verifying=action)
            try:
                thumb, diff = await self._check_screen(live.thumb, after)
            except BaseException:
                await self._drop(live, reading)
                raise
            if diff is not None and not diff.changed:
                await self._drop(live, reading)
                await self._settle(live, action, False, "no_change", diff, None)
                await self._fail(
                    live,
                    "no_change",
                    f"Nothing changed on the screen after '{action.target_element.get('target')}'.",
                    action,
                )
                return action
            plan = await self._analyze(live, after, verifying=action, reading=reading)
            if plan is None:  # the VLM failed (task failed) or the task was paused meanwhile
                if live.pending is action and live.task.status == "failed":
                    await self._withdraw(live, live.task.details["failure"]["reason"])
                return action
            await self._advance(live, after, thumb, plan, t0, verified=action, diff=diff)
        return action

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
        await self._set_status(live, "running", only_if=("paused",), failure=None, interrupted=None)
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


class TaskRunners:
    """Every user's runner, created on first use; lives in Services."""

    def __init__(self, store: Store, vision: VisionClient | None, settings: Settings) -> None:
        self.store = store
        self.planner = Planner(vision) if vision is not None else None
        self.settings = settings
        self._by_user: dict[str, TaskRunner] = {}
        self._keeper: asyncio.Task[None] | None = None

    def start(self) -> None:
        """REPLICA_MODE=multi: the live tasks' leases are renewed from now on (lease.py)."""
        if self.settings.replica_mode == "multi" and self._keeper is None:
            self._keeper = asyncio.create_task(keep_leases(self.runners, self.settings))

    def runners(self) -> list[TaskRunner]:
        return list(self._by_user.values())

    def get(self, user_id: str) -> TaskRunner:
        runner = self._by_user.get(user_id)
        if runner is None:
            runner = TaskRunner(user_id, self.store, self.planner, self.settings)
            self._by_user[user_id] = runner
        return runner

    async def close(self) -> None:
        if self._keeper is not None:
            self._keeper.cancel()
        for runner in self._by_user.values():
            await runner.close()
