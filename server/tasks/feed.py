"""Where a user's task events go and where its screens come from: the sessions listening
(fan-out, one slow session does not stop the others), the latest screen frame any of them
sent (latest wins, numbered, awaitable), and the background work that frames and speech
start (a refusal becomes a task.error event)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from server.logging import get_logger
from server.store.base import ApprovalRecord
from server.tasks.state import Frame, Listener, TaskError

log = get_logger(__name__)
Asker = Callable[[ApprovalRecord], Awaitable[None]]


class TaskFeed:
    def __init__(self, user_id: str) -> None:
        self.listeners: set[Listener] = set()
        self.askers: set[Asker] = set()
        self.frame: Frame | None = None
        self._seq = 0
        self._new_frame = asyncio.Event()
        self._background: set[asyncio.Task[Any]] = set()
        self.log = log.bind(user_id=user_id)

    def attach(self, listener: Listener, asker: Asker | None = None) -> Callable[[], None]:
        """A session listens for task events (and, with ``asker``, sends the approval
        requests of previewed actions in its protocol's shape); call the result to stop."""
        self.listeners.add(listener)
        if asker is not None:
            self.askers.add(asker)

        def detach() -> None:
            self.listeners.discard(listener)
            if asker is not None:
                self.askers.discard(asker)
            if not self.listeners:
                self.release_if_waiting()

        return detach

    def release_if_waiting(self) -> None:
        """No session listens any more (the runner's approvals may let go of the task)."""

    async def ask(self, rec: ApprovalRecord) -> None:
        """A previewed action's approval (stored) to every attached session, like emit."""
        for asker in list(self.askers):
            try:
                await asker(rec)
            except Exception as e:
                self.log.warning("task_approval_not_delivered", error=type(e).__name__)

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

    def push_frame(self, image: bytes) -> None:
        """A session's screen frame: it becomes the latest, and whoever waits for one wakes."""
        self._seq += 1
        self.frame = Frame(image, self._seq)
        ev, self._new_frame = self._new_frame, asyncio.Event()
        ev.set()

    async def next_frame(self, after_seq: int, wait_s: float) -> bytes:
        """The first frame numbered after ``after_seq``, waiting ``wait_s`` at most."""
        deadline = time.monotonic() + wait_s
        while self.frame is None or self.frame.seq <= after_seq:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TaskError(
                    409,
                    "no_screen",
                    f"No screen arrived within {wait_s:g} s after the "
                    "action (TASK_SCREEN_WAIT_S): send a screenshot with the confirmation.",
                )
            try:
                await asyncio.wait_for(self._new_frame.wait(), left)
            except TimeoutError:
                continue
        return self.frame.image

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    async def quiet(self, coro: Awaitable[Any]) -> None:
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
