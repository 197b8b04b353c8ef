"""OpenAI Realtime `response.create` and `response.cancel` (part of the input half of
server/protocols/realtime.py): which input a response answers (the queued user items, each
a message of its own, or the outputs of the client's functions) and the response's own
settings (`instructions`, modalities, `max_output_tokens`), which hold for that response
alone: the session's come back after its response.done, also across a session.update."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from server.hub import context_items
from server.hub.protocol import ProtocolError
from server.protocols.realtime_replies import StartingTurn
from server.protocols.realtime_session import response_changes

if TYPE_CHECKING:
    from server.agent.graph import ClientCall
    from server.hub.session import Session


class ResponseRequests:
    """Mixed into RealtimeEvents (through RealtimeInput), which sets these up."""

    s: Session
    _send: Callable[..., Awaitable[None]]
    pending: list[tuple[str, str]]  # user items (id, text) waiting for response.create
    awaiting: StartingTurn | None  # the user item of the turn starting now
    answers: list[tuple[ClientCall, str]]  # function outputs waiting for response.create
    one_response: dict[str, Any]  # the session's settings a response.create changed
    stored: dict[str, str]  # item id -> its stored message (conversation.item.delete)

    async def on_response_create(self, obj: dict[str, Any]) -> None:
        once = response_changes(obj.get("response"))
        r = self.s.response
        if r is not None and self.s.response_active():  # as OpenAI: one at a time, not a cut
            raise ProtocolError(
                "conversation_already_has_active_response",
                f"Conversation already has an active response in progress: {r.id}. "
                "Wait until the response is finished before creating a new one.",
            )
        if not self.answers and not self.pending:
            raise ProtocolError(
                "invalid_request_error",
                "There is no user input to respond to: create a user message or commit audio.",
            )
        # every user item is a message of its own, as in OpenAI's conversation (each can
        # be deleted): all but the last join the history, the last is the turn
        texts = [] if self.answers else [self.s.turn_text(t) for _, t in self.pending]
        # this response's own settings: the session's, changed until its response.done
        self.one_response = {k: self.s.config[k] for k in once}
        self.s.config.update(once)
        try:
            if self.answers:  # the turn that called the client's functions goes on
                answers, self.answers = self.answers, []
                await self.s.submit_function_results(answers)
            else:
                items, self.pending = [i for i, _ in self.pending], []
                for item_id, text in zip(items[:-1], texts, strict=False):
                    self.stored[item_id] = await context_items.add_line(self.s, "user", text)
                self.awaiting = StartingTurn(items[-1], texts[-1])  # response.created names it
                await self.s.submit_text(texts[-1])
        finally:
            if self.s.response is r or not self.s.response_active():  # no response started
                self.end_one_response()

    def end_one_response(self) -> None:
        """The session's own settings again after a response.create's own."""
        self.s.config.update(self.one_response)
        self.one_response = {}

    async def on_response_cancel(self, obj: dict[str, Any]) -> None:
        if not self.s.response_active():
            raise ProtocolError(
                "response_cancel_not_active", "There is no active response to cancel."
            )
        await self.s.cancel_response(settled=False)  # a truncate may follow

    async def update_session_settings(self, changes: dict[str, Any]) -> None:
        """A session.update during a response with its own settings: the session's own
        change and are stored and reported; the response keeps its own until it is done."""
        once = {k: self.s.config[k] for k in self.one_response if k not in changes}
        self.end_one_response()
        await self.s.update_settings(changes)
        self.one_response = {k: self.s.config[k] for k in once}
        self.s.config.update(once)
