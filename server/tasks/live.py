"""The session side of screen tasks: what a WebSocket session forwards to the user's task
runner (client events, frames, turns) and how task events reach it (with the line the
persona says before an action)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from server.personas import Persona
from server.providers.llm import LazyChatModel
from server.tasks.runner import Listener, TaskError, TaskRunner
from server.tasks.state import Answered
from server.tasks.views import preview_line
from server.tasks.voice import phrase_preview

Send = Callable[[dict[str, Any]], Awaitable[None]]
PHRASE_TIMEOUT_S = 4.0  # the persona's own words for a preview, else the fixed line


def listener(
    send: Send, language: Callable[[], str], on_preview: Callable[[dict[str, Any]], None]
) -> Listener:
    """Task events for one session. A preview carries ``say`` (the fixed question in the
    persona's language) and is handed to ``on_preview``, which has the persona ask."""

    async def on_event(event: dict[str, Any]) -> None:
        if event["type"] == "task.action_preview":
            event = event | {"say": preview_line(language(), event)}
            await send(event)
            on_preview(event)
            return
        await send(event)

    return on_event


class Speaker(Protocol):
    async def say(self, text: str) -> None: ...


async def speak_preview(
    speaker: Speaker,
    llm: LazyChatModel | None,
    persona: Persona,
    user_turns: int,
    preview: dict[str, Any],
) -> None:
    """Phrase the preview in the persona's own words, then say it (a response of its own)."""
    text = await phrase_preview(llm, persona, user_turns, preview, PHRASE_TIMEOUT_S)
    await speaker.say(text)


async def client_event(
    runner: TaskRunner, ev: Any, seq_at_receipt: int, error: Send, answered: Answered
) -> None:
    """task.confirm / task.executed / task.control, run off the session's reader (a confirm
    waits for the next screen frame, which the reader must stay free to receive). A clicked
    answer joins the session's history through ``answered``."""
    try:
        if ev.type == "task.confirm":
            await runner.approve(ev.task_id, ev.action_id, ev.approve, answered=answered)
        elif ev.type == "task.executed":
            await runner.confirm(ev.task_id, ev.action_id, ev.executed, None, seq_at_receipt)
        elif ev.command == "retry":
            await runner.retry(ev.task_id)
        else:
            await getattr(runner, ev.command)(ev.task_id)
    except TaskError as e:
        await error({"type": "error", "code": e.code, "message": e.message, "fatal": False})
