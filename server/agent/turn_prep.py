"""The turn's preparation, seed 000's steps before the reply: perceive_environment ->
query_memory -> reason_and_plan. Agent's first generate_response runs them as one step
(``prepare_turn``); they live apart from the graph (agent/graph.py) because they decide
what the reply may use, not how it is generated or streamed."""

from __future__ import annotations

import re
from typing import Any, cast

from langchain_core.messages import BaseMessage, HumanMessage
from langgraph.runtime import Runtime

from server.agent.memory import LongTermMemory
from server.agent.state import GraphState, TurnContext

_FILLER = re.compile(r"^[\s.,!?…~\-]*((um+|uh+|hmm+|음+|어+|아+|으+)[\s.,!?…~\-]*)*$", re.I)


def last_human_text(messages: list[BaseMessage]) -> str:
    """The text of the user's last message: what the turn answers."""
    for m in reversed(messages):
        if isinstance(m, HumanMessage):
            return m.text if hasattr(m, "text") else str(m.content)
    return ""


class TurnPreparation:
    """Mixed into Agent: the steps that prepare a turn before its first model call."""

    memory: LongTermMemory

    async def prepare_turn(
        self, state: GraphState, runtime: Runtime[TurnContext]
    ) -> dict[str, Any]:
        """perceive_environment, then query_memory, then reason_and_plan: each step sees
        what the steps before it found, as it would in a node of its own."""
        update: dict[str, Any] = {}
        for step in (self.perceive_environment, self.query_memory, self.reason_and_plan):
            update |= await step(cast(GraphState, {**state, **update}), runtime)
        return update

    async def perceive_environment(
        self, state: GraphState, runtime: Runtime[TurnContext]
    ) -> dict[str, Any]:
        """What the session sees now, without waiting: a fresh look is the model's call
        (get_screen_context)."""
        p = runtime.context.perception
        if p is None:
            return {}
        return {"visual_context": p.latest_visual(), "affect": p.latest_affect()}

    async def query_memory(
        self, state: GraphState, runtime: Runtime[TurnContext]
    ) -> dict[str, Any]:
        """Search-Before-Act: always look the user up before any reply is generated (the
        search started with the turn, while the checkpoint loaded and perceive ran)."""
        started, runtime.context.memory_search = runtime.context.memory_search, None
        if started is not None:
            hits = await started.task
        else:
            hits = await self.memory.search(state["user_id"], last_human_text(state["messages"]))
        found = [
            {"id": h.id, "memory": h.memory, "category": h.category, "updated_at": h.updated_at}
            for h in hits
        ]
        env = runtime.context.tool_env
        if env is not None:
            env.read_ids.update(h.id for h in hits)
        if runtime.context.on_memory_searched:
            await runtime.context.on_memory_searched(found)
        return {"memory_context": found}

    async def reason_and_plan(
        self, state: GraphState, runtime: Runtime[TurnContext]
    ) -> dict[str, Any]:
        text = last_human_text(state["messages"])
        if _FILLER.match(text):
            await runtime.context.confirmed()  # a silent turn ends here: only once confirmed
            return {"action_plan": {"action": "silent", "reason": "no content to answer"}}
        ctx = runtime.context
        style = ctx.persona.style_for(ctx.user_turns)
        return {
            "intimacy": style.level,
            "action_plan": {
                "action": "respond",
                "style": style.name,
                "use_visual": bool(state.get("visual_context")),
                "use_memory": bool(state.get("memory_context")),
                "tools": ctx.tool_env is not None,
            },
        }
