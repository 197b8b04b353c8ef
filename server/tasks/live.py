"""The session side of screen tasks: what a WebSocket session forwards to the user's task
runner (client events, frames, turns) and how task events reach it (with the line the
persona says before an action)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from server.tasks.runner import Listener, TaskError, TaskRunner
from server.tasks.views import preview_line

Send = Callable[[dict[str, Any]], Awaitable[None]]


def listener(send: Send, language: str) -> Listener:
    """Task events for one session; a preview carries ``say``, the persona's question."""

    async def on_event(event: dict[str, Any]) -> None:
        if event["type"] == "task.action_preview":
            event = event | {"say": preview_line(language, event)}
        await send(event)

    return on_event


async def client_event(runner: TaskRunner, ev: Any, seq_at_receipt: int, error: Send) -> None:
    """task.confirm / task.executed / task.control, run off the session's reader (a confirm
    waits for the next screen frame, which the reader must stay free to receive)."""
    try:
        if ev.type == "task.confirm":
            await runner.approve(ev.task_id, ev.action_id, ev.approve)
        elif ev.type == "task.executed":
            await runner.confirm(ev.task_id, ev.action_id, ev.executed, None, seq_at_receipt)
        elif ev.command == "retry":
            await runner.retry(ev.task_id)
        else:
            await getattr(runner, ev.command)(ev.task_id)
    except TaskError as e:
        await error({"type": "error", "code": e.code, "message": e.message, "fatal": False})
