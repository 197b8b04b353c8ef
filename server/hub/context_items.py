"""Lines a client puts into the conversation without a turn (OpenAI Realtime's system and
assistant message items, Pipecat's context seeding, a user item that comes before another
one the same response answers) and the removal of any of the session's messages
(``conversation.item.delete``: these lines, the user's turns, the persona's replies). Each
is stored in the transcript and written into the model's history, so the next turn's prompt
has it; acknowledged means stored."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from server.store.base import new_id

if TYPE_CHECKING:
    from server.hub.session import Session

ContextRole = Literal["system", "assistant", "user"]


async def add_line(s: Session, role: ContextRole, text: str) -> str:
    """Store ``text`` as a ``role`` line of this session and put it at the end of the
    model's history. A reply still being generated finishes first: its run writes the
    history when it ends and would drop a line added meanwhile. Returns the message id."""
    async with s.own_lines:
        await s.let_reply_finish(None)
        message_id = new_id()
        await s.services.store.add_message(
            s.user_id, s.record.id, s.persona.id, role, text, message_id=message_id
        )
        await s.services.agent.record_context(s.record.thread_id, role, text, message_id)
    return message_id


async def delete_line(s: Session, message_id: str) -> bool:
    """Remove one of this session's messages from the transcript and the model's history.
    False when the user has no such message (the store filters by user)."""
    async with s.own_lines:
        await s.let_reply_finish(None)
        if not await s.services.store.delete_message(s.user_id, s.record.id, message_id):
            return False
        await s.services.agent.forget_message(s.record.thread_id, message_id)
        r = s.response
        if r is not None and r.message_id == message_id:  # a later cut of its reply
            r.user_text = ""  # settles the reply alone, without the deleted words
    return True
