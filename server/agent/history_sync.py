"""Make the model's history (the thread's LangGraph checkpoint) agree with the stored
transcript, which is the truth: what the user was told is stored.

They can disagree after a crash. The graph writes its checkpoint once, when a turn ends
(``durability="exit"``), while the user's message is stored when the turn starts: a turn
cut by kill -9 leaves the user's message in the transcript and not in the model's history.
And a process killed between the checkpoint write and the reply's store write leaves a
reply in the history that the transcript never got.

Messages are matched by id: a turn's user message and reply carry the same id in the store
and in the checkpoint (server/hub/session.py mints them). Run on resume, before the
first turn.
"""

from __future__ import annotations

from dataclasses import dataclass

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, RemoveMessage

from server.agent.graph import Agent
from server.agent.thread_edits import CONTEXT
from server.store.base import MessageRecord, Store

PAGE = 500


@dataclass
class SyncResult:
    added: int = 0
    removed: int = 0


def as_message(m: MessageRecord) -> BaseMessage:
    if m.role == "user":
        return HumanMessage(m.content, id=m.id)
    extra = {"interrupted": True} if m.interrupted else {}
    return AIMessage(m.content, id=m.id, additional_kwargs=extra)


async def stored_transcript(store: Store, user_id: str, session_id: str) -> list[MessageRecord]:
    out: list[MessageRecord] = []
    while page := await store.list_messages(user_id, session_id, limit=PAGE, offset=len(out)):
        out += page
        if len(page) < PAGE:
            break
    return [m for m in out if m.role in ("user", "assistant")]


async def sync_history(
    agent: Agent, store: Store, user_id: str, session_id: str, thread_id: str
) -> SyncResult:
    """Append stored messages the history lacks after the last message both have, and
    drop history messages after it that were never stored."""
    history = await agent.history(thread_id)
    stored = await stored_transcript(store, user_id, session_id)
    stored_ids = {m.id for m in stored}
    history_ids = {m.id for m in history}
    last_h = max((i for i, m in enumerate(history) if m.id in stored_ids), default=-1)
    if history and last_h < 0:
        return SyncResult()  # a thread from before ids were shared: nothing to match on
    last_s = max((i for i, m in enumerate(stored) if m.id in history_ids), default=-1)
    # a client's context line is stored before it enters the history (hub/context_items)
    drop = [m.id for m in history[last_h + 1 :] if m.id and not m.additional_kwargs.get(CONTEXT)]
    add = [as_message(m) for m in stored[last_s + 1 :]][-agent.history_messages :]
    if drop or add:
        await agent.replace_tail([RemoveMessage(id=i) for i in drop], add, thread_id)
    return SyncResult(added=len(add), removed=len(drop))
