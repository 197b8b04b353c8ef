"""Edits of a thread's model history outside a normal turn: a turn cut short (what the
user heard), a line the persona said on its own, an answer given without a turn, a call
decided after its turn ended, the client's answers to its own functions (the
continuation's exchange), and dropping what a discarded run wrote."""

from __future__ import annotations

import json
from typing import Any

from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    HumanMessage,
    RemoveMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver

from server.agent.state import ToolRecord, TurnContext
from server.agent.turn_events import ClientCall

SAID = "said"  # additional_kwargs flag of a line the persona said on its own (record_said)
CONTEXT = "context"  # additional_kwargs flag of a line a client added (record_context)
RUN_TAG = "run_tag"  # checkpoint metadata: the run that wrote it (Agent.forget_run)


class ThreadEdits:
    """Mixed into Agent: history edits through the compiled graph's state."""

    graph: Any  # the compiled turn graph (Agent.__init__)
    make_env: Any

    @staticmethod
    def config(thread_id: str, run_tag: str | None = None) -> RunnableConfig:
        """``run_tag`` marks the checkpoints a run writes (``forget_run``)."""
        cfg: RunnableConfig = {"configurable": {"thread_id": thread_id}}
        if run_tag is not None:
            cfg["metadata"] = {RUN_TAG: run_tag}
        return cfg

    @staticmethod
    def client_exchange(results: list[tuple[ClientCall, str]]) -> list[BaseMessage]:
        """The model's calls to client functions and what the client answered, as the
        continuation turn puts them before the model's answer (``stream_turn(after=...)``)."""
        calls = [
            {"id": c.call_id, "name": c.name, "args": _json_args(c.arguments)} for c, _ in results
        ]
        answers = [ToolMessage(out, tool_call_id=c.call_id, name=c.name) for c, out in results]
        return [AIMessage("", tool_calls=calls), *answers]

    async def resume_call(
        self, user_id: str, ctx: TurnContext, call_id: str, name: str, args: Any, decision: Any
    ) -> list[BaseMessage]:
        """A call whose turn ended before the user decided (a reconnect): run it or record
        why not, and return the exchange (the model's call and its result) that the
        continuation turn puts before the model's answer (``stream_turn(after=...)``)."""
        if ctx.tool_env is None and self.make_env is not None:
            ctx.tool_env = self.make_env(user_id, ctx.perception)
        assert ctx.tool_env is not None
        if ctx.on_tool_event:
            await ctx.on_tool_event(
                {"type": "response.tool_call", "call_id": call_id, "name": name, "arguments": args}
            )
        rec = await self.run_decided(ctx, ctx.tool_env, call_id, name, args, decision)
        call = {"id": call_id, "name": name, "args": rec.arguments}
        return [
            AIMessage("", tool_calls=[call]),
            ToolMessage(rec.content, tool_call_id=call_id, name=name),
        ]

    async def record_interrupted(
        self,
        thread_id: str,
        user_text: str,
        heard_text: str,
        message_id: str,
        reply_id: str,
        tool_log: list[ToolRecord] | None = None,
    ) -> None:
        """Make the graph's history hold the user's turn (message ``message_id``), the tool
        calls that ran (their effects stay) with their results, and only what the user
        actually heard of the reply (``reply_id``). A cancelled run may have stored nothing
        of this turn, the whole reply (cancelled during playback), or a model message whose
        tool calls never ran: those calls are dropped, so the thread stays valid.
        Idempotent: a second call with the settled heard text replaces the first's."""
        snap = await self.graph.aget_state(self.config(thread_id))
        history: list[BaseMessage] = snap.values.get("messages", [])
        have = {m.id for m in history}
        done = {r.call_id: r for r in tool_log or []}
        new: list[BaseMessage] = []
        start = next((i for i, m in enumerate(history) if m.id == message_id), None)
        if start is None and user_text:  # no text: the client deleted the user's message
            new.append(HumanMessage(user_text, id=message_id))
        turn = history[start + 1 :] if start is not None else []
        answered = {m.tool_call_id for m in turn if isinstance(m, ToolMessage)}
        for m in turn:
            if not isinstance(m, AIMessage) or not m.tool_calls:
                continue
            kept = [c for c in m.tool_calls if c["id"] in answered or c["id"] in done]
            if len(kept) != len(m.tool_calls):  # same id: replaces the stored message
                new.append(AIMessage(m.content, id=m.id, tool_calls=kept))
            for c in kept:
                rec = done.pop(c["id"], None)
                if rec is not None and c["id"] not in answered:
                    new.append(ToolMessage(rec.content, tool_call_id=rec.call_id, name=rec.name))
        for rec in done.values():  # ran, but the model's message was never stored
            call = {"id": rec.call_id, "name": rec.name, "args": rec.arguments}
            new.append(AIMessage("", tool_calls=[call]))
            new.append(ToolMessage(rec.content, tool_call_id=rec.call_id, name=rec.name))
        if heard_text:  # the same id replaces the reply in place
            new.append(AIMessage(heard_text, id=reply_id, additional_kwargs={"interrupted": True}))
        elif reply_id in have:
            new.append(RemoveMessage(id=reply_id))
        if new:
            await self.replace_tail([], new, thread_id)

    async def record_said(
        self, thread_id: str, text: str, reply_id: str, interrupted: bool = False
    ) -> None:
        """A line the persona said on its own (a screen task's preview) joins the model's
        history like a reply, so the next turn knows what it asked ("응" answers it). The
        same id replaces it in place once a cut line settles to what was heard; nothing
        heard removes it."""
        if text:
            extra: dict[str, Any] = {SAID: True} | ({"interrupted": True} if interrupted else {})
            await self.replace_tail(
                [], [AIMessage(text, id=reply_id, additional_kwargs=extra)], thread_id
            )
        elif any(m.id == reply_id for m in await self.history(thread_id)):
            await self.replace_tail([RemoveMessage(id=reply_id)], [], thread_id)

    async def record_answer(self, thread_id: str, text: str, message_id: str) -> None:
        """The user's answer given without a turn (a clicked yes or no to a screen task's
        preview) joins the model's history as theirs, as a spoken one would, so the next
        turn knows what they decided. The same id as its stored message."""
        await self.replace_tail([], [HumanMessage(text, id=message_id)], thread_id)

    async def record_context(self, thread_id: str, role: str, text: str, message_id: str) -> None:
        """A system note, an assistant line or a user line a client put into the
        conversation (server/hub/context_items.py) joins the history, flagged so the prompt
        keeps it with the user's turn after it. The same id as its stored message."""
        extra = {CONTEXT: True}
        line = {"system": SystemMessage, "user": HumanMessage}.get(role, AIMessage)
        await self.replace_tail([], [line(text, id=message_id, additional_kwargs=extra)], thread_id)

    async def forget_message(self, thread_id: str, message_id: str) -> None:
        """A message the client deleted leaves the history (if it is still there)."""
        if any(m.id == message_id for m in await self.history(thread_id)):
            await self.replace_tail([RemoveMessage(id=message_id)], [], thread_id)

    async def replace_tail(
        self, remove: list[RemoveMessage], add: list[BaseMessage], thread_id: str
    ) -> None:
        """One history update outside a turn (recorded as if update_memory had run)."""
        await self.graph.aupdate_state(
            self.config(thread_id), {"messages": [*remove, *add]}, as_node="update_memory"
        )

    async def forget_run(self, thread_id: str, run_tag: str) -> int:
        """Drop the checkpoints a cancelled run wrote (a discarded preemptive start): even
        cancelled, LangGraph checkpoints the run's input at exit. The thread's latest state
        is then what it was before the run, under the same checkpoint id. Returns how many
        were dropped."""
        saver = self.graph.checkpointer
        assert isinstance(saver, BaseCheckpointSaver)
        tagged = [
            c.config["configurable"]["checkpoint_id"]
            async for c in saver.alist(self.config(thread_id), filter={RUN_TAG: run_tag})
        ]
        if tagged:  # both stores' savers can (server/store/checkpoints_*.py)
            await saver.adrop_checkpoints(thread_id, tagged)  # type: ignore[attr-defined]
        return len(tagged)

    async def history(self, thread_id: str) -> list[BaseMessage]:
        snap = await self.graph.aget_state(self.config(thread_id))
        return list(snap.values.get("messages", []))


def _json_args(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError:
        return {"raw": text}
    return value if isinstance(value, dict) else {"value": value}
