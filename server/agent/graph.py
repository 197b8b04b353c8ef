"""The persona turn as a LangGraph graph:
perceive -> query_memory -> reason_and_plan -(respond)-> generate_response -> update_memory
                                          \\-(silent)-> END
"""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    HumanMessage,
    RemoveMessage,
)
from langchain_core.runnables import RunnableConfig
from langchain_openai import ChatOpenAI
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime

from server.agent.memory import LongTermMemory
from server.agent.prompts import build_system_prompt
from server.agent.state import GraphState, TurnContext
from server.providers.llm import LLMNotConfigured

GENERATE = "generate_response"
_FILLER = re.compile(r"^[\s.,!?…~\-]*((um+|uh+|hmm+|음+|어+|아+|으+)[\s.,!?…~\-]*)*$", re.I)
_SCREEN_Q = re.compile(
    r"screen|monitor|see (this|that|it)|look at|화면|보여|보이|봐\s*줘|이거 뭐", re.I
)


def last_human_text(messages: list[BaseMessage]) -> str:
    for m in reversed(messages):
        if isinstance(m, HumanMessage):
            return m.text if hasattr(m, "text") else str(m.content)
    return ""


@dataclass
class TurnDelta:
    text: str


@dataclass
class TurnFinished:
    text: str
    silent: bool
    usage: dict[str, int] = field(default_factory=dict)
    memory_ms: float = 0.0


class Agent:
    def __init__(
        self,
        llm: ChatOpenAI | None,
        memory: LongTermMemory,
        checkpointer: BaseCheckpointSaver,
        history_messages: int = 24,
    ) -> None:
        self.llm = llm
        self.memory = memory
        self.history_messages = history_messages
        g = StateGraph(GraphState, context_schema=TurnContext)
        g.add_node("perceive", self.perceive)
        g.add_node("query_memory", self.query_memory)
        g.add_node("reason_and_plan", self.reason_and_plan)
        g.add_node(GENERATE, self.generate_response)
        g.add_node("update_memory", self.update_memory)
        g.add_edge(START, "perceive")
        g.add_edge("perceive", "query_memory")
        g.add_edge("query_memory", "reason_and_plan")
        g.add_conditional_edges("reason_and_plan", self.route, {"respond": GENERATE, "silent": END})
        g.add_edge(GENERATE, "update_memory")
        g.add_edge("update_memory", END)
        self.graph = g.compile(checkpointer=checkpointer)

    # --- nodes ------------------------------------------------------------------------
    async def perceive(self, state: GraphState, runtime: Runtime[TurnContext]) -> dict[str, Any]:
        p = runtime.context.perception
        if p is None:
            return {}
        visual = p.latest_visual()
        if _SCREEN_Q.search(last_human_text(state["messages"])):
            visual = await p.fresh_visual(runtime.context.vision_wait_s) or visual
        return {"visual_context": visual, "affect": p.latest_affect()}

    async def query_memory(
        self, state: GraphState, runtime: Runtime[TurnContext]
    ) -> dict[str, Any]:
        """Search-Before-Act: always look the user up before any reply is generated."""
        found = await self.memory.search(state["user_id"], last_human_text(state["messages"]))
        if runtime.context.on_memory_searched:
            await runtime.context.on_memory_searched(found)
        return {"memory_context": found}

    async def reason_and_plan(
        self, state: GraphState, runtime: Runtime[TurnContext]
    ) -> dict[str, Any]:
        text = last_human_text(state["messages"])
        if _FILLER.match(text):
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
            },
        }

    @staticmethod
    def route(state: GraphState) -> str:
        plan = state.get("action_plan") or {}
        return "silent" if plan.get("action") == "silent" else "respond"

    async def generate_response(
        self, state: GraphState, runtime: Runtime[TurnContext]
    ) -> dict[str, Any]:
        if self.llm is None:
            raise LLMNotConfigured()
        ctx = runtime.context
        system = build_system_prompt(
            ctx.persona,
            ctx.persona.style_for(ctx.user_turns),
            memories=state.get("memory_context"),
            visual_context=state.get("visual_context"),
            affect=state.get("affect"),
            instructions=ctx.instructions,
            instructions_mode=ctx.instructions_mode,
        )
        history = state["messages"][-self.history_messages :]
        while history and not isinstance(history[0], HumanMessage):
            history = history[1:]  # a window starts with the user speaking
        kwargs: dict[str, Any] = {}
        if ctx.temperature is not None:
            kwargs["temperature"] = ctx.temperature
        if ctx.max_tokens is not None:
            kwargs["max_completion_tokens"] = ctx.max_tokens
        model = self.llm.bind(**kwargs) if kwargs else self.llm
        reply = await model.ainvoke([("system", system), *history])
        if ctx.reply_id:
            reply.id = ctx.reply_id
        return {"messages": [reply]}

    async def update_memory(self, state: GraphState) -> dict[str, Any]:
        msgs = state["messages"]
        if len(msgs) >= 2 and isinstance(msgs[-1], AIMessage):
            self.memory.add_background(
                state["user_id"],
                [
                    {"role": "user", "content": last_human_text(msgs)},
                    {"role": "assistant", "content": str(msgs[-1].content)},
                ],
            )
        # The thread's state keeps only what a prompt can use, so loading and saving it costs
        # the same on turn 500 as on turn 5. The full history stays in the store's messages,
        # and long-term facts in mem0.
        old = msgs[: -self.history_messages]
        return {"messages": [RemoveMessage(id=m.id) for m in old if m.id]} if old else {}

    # --- running turns ----------------------------------------------------------------
    @staticmethod
    def config(thread_id: str) -> RunnableConfig:
        return {"configurable": {"thread_id": thread_id}}

    async def stream_turn(
        self,
        user_id: str,
        thread_id: str,
        text: str,
        ctx: TurnContext,
        message_id: str | None = None,
    ) -> AsyncIterator[TurnDelta | TurnFinished]:
        """Yield text deltas of the reply as the LLM streams them, then TurnFinished.
        ``message_id``: the id the user's message has in the store."""
        inp: GraphState = {
            "messages": [HumanMessage(text, id=message_id)],
            "user_id": user_id,
            "persona_id": ctx.persona.id,
            "visual_context": None,
            "affect": None,
            "memory_context": [],
            "action_plan": None,
        }
        parts: list[str] = []
        usage: dict[str, int] = {}
        silent = True
        t_mem = time.perf_counter()
        mem_ms = 0.0
        # durability="exit": one checkpoint write per turn instead of one per node; a
        # cancelled turn is written by record_interrupted instead.
        async for mode, chunk in self.graph.astream(
            inp,
            self.config(thread_id),
            context=ctx,
            stream_mode=["messages", "updates"],
            durability="exit",
        ):
            if mode == "messages":
                msg, meta = chunk
                if meta.get("langgraph_node") != GENERATE or not isinstance(msg, AIMessageChunk):
                    continue
                if msg.usage_metadata:
                    usage = {
                        "input_tokens": msg.usage_metadata.get("input_tokens", 0),
                        "output_tokens": msg.usage_metadata.get("output_tokens", 0),
                    }
                delta = msg.text if isinstance(msg.content, list) else msg.content
                if delta:
                    parts.append(delta)
                    yield TurnDelta(delta)
            elif "query_memory" in chunk:
                mem_ms = (time.perf_counter() - t_mem) * 1000
            elif GENERATE in chunk:
                silent = False
        yield TurnFinished("".join(parts), silent, usage, mem_ms)

    async def record_interrupted(
        self, thread_id: str, user_text: str, heard_text: str, message_id: str, reply_id: str
    ) -> None:
        """Make the graph's history hold the user's turn (message ``message_id``) and only what
        the user actually heard of the reply (``reply_id``): a cancelled run may have stored
        nothing of this turn, or the whole reply (cancelled during playback). Idempotent:
        a second call with the settled heard text replaces the first's."""
        snap = await self.graph.aget_state(self.config(thread_id))
        have = {m.id for m in snap.values.get("messages", [])}
        new: list[BaseMessage] = []
        if message_id not in have:
            new.append(HumanMessage(user_text, id=message_id))
        if heard_text:  # the same id replaces the reply in place
            new.append(AIMessage(heard_text, id=reply_id, additional_kwargs={"interrupted": True}))
        elif reply_id in have:
            new.append(RemoveMessage(id=reply_id))
        if new:
            await self.replace_tail([], new, thread_id)

    async def replace_tail(
        self, remove: list[RemoveMessage], add: list[BaseMessage], thread_id: str
    ) -> None:
        """One history update outside a turn (recorded as if update_memory had run)."""
        await self.graph.aupdate_state(
            self.config(thread_id), {"messages": [*remove, *add]}, as_node="update_memory"
        )

    async def history(self, thread_id: str) -> list[BaseMessage]:
        snap = await self.graph.aget_state(self.config(thread_id))
        return list(snap.values.get("messages", []))
