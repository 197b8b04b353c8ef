"""One live session: the protocol-independent core (hub/core.py), its response lifecycle
(hub/responses.py) and its perception (hub/perception.py), spoken to the client by one wire
protocol from server/protocols/ (ours at /v1/ws is protocols/ws_v1.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any

from starlette.websockets import WebSocket

from server.agent.approvals import ApprovalError, ApprovalGate, Choice
from server.hub import continuation
from server.hub.core import OUTPUT_RATE, SessionCore
from server.hub.events import SessionEvents
from server.hub.outbound import SlowConsumer
from server.hub.perception import Perception
from server.hub.preemptive import PreemptiveStarts
from server.hub.protocol import ProtocolError
from server.hub.responses import ActiveResponse, Responses
from server.initiative.live import Initiative
from server.personas import Persona
from server.store.base import ApprovalRecord, SessionRecord, TaskActionRecord, new_id
from server.tasks import live as task_live
from server.tasks.state import TaskError
from server.tasks.views import clicked_answer

if TYPE_CHECKING:
    from server.services import Services

__all__ = [
    "OUTPUT_RATE",
    "ActiveResponse",
    "Session",
    "SessionCore",
    "SlowConsumer",
]


class Session(Responses, Perception):
    """A session core with its responses and perception; `protocol` builds the layer that
    reads the client's frames and writes our happenings in its event shapes."""

    def __init__(
        self,
        ws: WebSocket,
        services: Services,
        user_id: str,
        record: SessionRecord,
        persona: Persona,
        user_turns: int,
        resumed: bool,
        protocol: Callable[[Session], SessionEvents],
    ) -> None:
        super().__init__(ws, services, user_id, record, persona, user_turns, resumed)
        self.response = None
        self._response_counter = 0
        self._warned_tts = False
        self.own_lines = asyncio.Lock()
        self.preemptive = PreemptiveStarts(self)
        self.init_perception()
        self.tasks = services.tasks.get(user_id)
        self._detach_tasks = self.tasks.attach(
            task_live.listener(
                self._emit_task_event, lambda: self.persona.language, self._say_preview
            ),
            self._ask_task_approval,
        )
        self.events = protocol(self)
        self.approvals = ApprovalGate(
            services.store,
            user_id,
            record.id,
            self.settings.approval_timeout_s,
            partial(continuation.ask, self),
            services.approval_waiters,
            partial(continuation.resume, self),
            services.approval_fleet,
            self.settings.task_expiry_grace_s,
        )
        services.live_sessions.add(user_id, self.perception)  # REST turns see what we see
        self.initiative = Initiative(self, self.settings, services.store, services.initiative.data)
        self.initiative.pending_approval = lambda: self.approvals.waiting
        self._detach_initiative = services.initiative.attach(user_id, self.initiative)
        self.spawn(self.initiative.run())

    @property
    def session_id(self) -> str:
        return self.record.id

    async def answer_approval(
        self,
        call_id: str,
        decision: Choice,
        arguments: dict[str, Any] | None,
        message: str | None,
    ) -> None:
        """approval.response (or a studio click): stored, then the waiting turn goes on; a
        screen task action's is the same as task.confirm (server/tasks/approval.py)."""
        answered = self.record_task_answer
        try:
            if await self.tasks.answer_if_task_approval(call_id, decision, message, answered):
                return
        except TaskError as e:
            raise ProtocolError("approval_not_pending", e.message) from None
        try:
            await self.approvals.answer(call_id, decision, arguments, message)
        except ApprovalError as e:
            raise ProtocolError("approval_not_pending", str(e)) from None

    async def record_task_answer(
        self, action: TaskActionRecord, yes: bool, message: str | None
    ) -> None:
        """A clicked answer to a task preview joins the transcript and the model's history
        as the user's (a spoken one is their turn), before the task acts on it. The
        persona's question still being said stops there (it is answered); another reply is
        let finish first, so the history keeps its order."""
        async with self.own_lines:
            r = self.response
            if r is not None and r.script is not None:
                await self.cancel_response()
            else:
                await self.let_reply_finish()
            text = clicked_answer(action, yes, message)
            message_id = new_id()
            store = self.services.store
            await store.add_message(
                self.user_id, self.record.id, self.persona.id, "user", text, message_id=message_id
            )
            await self.services.agent.record_answer(self.record.thread_id, text, message_id)

    async def _ask_task_approval(self, rec: ApprovalRecord) -> None:
        """A screen task action's approval.request (the persona asks it with the preview)."""
        await self.events.approval_request(rec, continuation.question(self, rec))

    async def on_started(self) -> None:
        """After session.created: approvals still pending from an earlier socket are asked
        again (they survive reconnects and resumes until they expire)."""
        for rec in await self.approvals.resend_pending():
            self.spawn(self.approvals.expire_later(rec))
        task_rec = await self.tasks.pending_approval()
        if task_rec is not None:
            await self._ask_task_approval(task_rec)

    async def _emit_task_event(self, event: dict[str, Any]) -> None:
        """task.* events (screen task assistant), in /v1/ws shape."""
        await self.events.analysis(event)

    def _say_preview(self, preview: dict[str, Any]) -> None:
        """A screen task's next action: the persona asks for it in its own words."""
        llm = self.services.agent.llm
        self.spawn(task_live.speak_preview(self, llm, self.persona, self.user_turns, preview))

    async def on_closing(self) -> None:
        self.services.live_sessions.remove(self.user_id, self.perception)
        self._detach_tasks()
        self._detach_initiative()
        await self.preemptive.close()
        await self.cancel_response()
        await self.close_perception()
