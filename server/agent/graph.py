"""The persona turn as a LangGraph graph (seed 000's steps):

generate_response -(tool calls)-> tools -> generate_response ... -(answer)-> END
                  \\-(silent)-> END                \\-(stay_silent)-> update_memory

A turn's first generate_response prepares it (prepare_turn, agent/turn_prep.py: seed 000's
perceive_environment -> query_memory -> reason_and_plan, in that order) and ends the turn
there on a silent plan; the answer's generate_response runs update_memory on it. Steps
that always run together share a node, since each LangGraph superstep costs CPU of its own
(task preparation, channel writes, a checkpoint copy, callbacks, about 0.3 ms).

The tools are bound on the same streamed call that answers, so a turn without a tool call
costs no extra LLM round-trip; when the streamed message carries tool calls, the tools node
runs them and the model is called again (at most AGENT_MAX_TOOL_ROUNDS times).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
from collections.abc import AsyncIterator, Callable
from typing import Any, Literal, cast

import openai
from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    HumanMessage,
    RemoveMessage,
)
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime
from langgraph.types import Command

from server.agent.memory import LongTermMemory
from server.agent.prompts import build_system_prompt
from server.agent.state import GraphState, MemorySearch, Perception, ToolRecord, TurnContext
from server.agent.thread_edits import CONTEXT, SAID, ThreadEdits
from server.agent.tool_rounds import ToolRounds
from server.agent.tools import ToolEnv, ToolRegistry
from server.agent.turn_events import (
    ClientCall,
    ToolProgress,
    TurnDelta,
    TurnEmotion,
    TurnFinished,
)
from server.agent.turn_prep import TurnPreparation, last_human_text
from server.agent.wire import to_ai_message, to_openai
from server.avatar.emotions import Mark, MarkFilter, strip_marks
from server.logging import get_logger
from server.providers.chat_stream import ChatStream
from server.providers.llm import LazyChatModel, LLMNotConfigured
from server.providers.usage_meter import TurnMeter
from server.store.base import utcnow

log = get_logger(__name__)

PREPARE = "prepare_turn"
GENERATE = "generate_response"
TOOLS = "tools"
_TOOLS_REFUSED = re.compile(r"tool|function", re.I)
_END = object()  # the graph run ended (stream_turn's queue)

ToolMode = Literal["auto", "on", "off"]
EnvFactory = Callable[[str, Perception | None], ToolEnv]


def refuses_tools(e: Exception) -> bool:
    """An endpoint saying it cannot do tool calling (vLLM without a tool parser, Ollama
    models without tools, ...): a 4xx whose message names tools or functions."""
    if not isinstance(e, openai.APIStatusError) or e.status_code not in (400, 404, 422, 501):
        return False
    return bool(_TOOLS_REFUSED.search(str(e.message) + str(e.body or "")))


def prompt_window(messages: list[BaseMessage], n: int) -> list[BaseMessage]:
    """The last ``n`` messages, starting where the user speaks (or at the persona's own
    lines right before), and never cutting into the current turn (whose tool exchanges
    must stay whole)."""
    current = max((i for i, m in enumerate(messages) if isinstance(m, HumanMessage)), default=0)
    start = min(max(0, len(messages) - n), current)
    while start < current and not isinstance(messages[start], HumanMessage):
        start += 1
    # lines the persona said on its own just before (a task preview): the user answers them;
    # lines a client added (system notes, assistant lines) shape the turn after them
    kept = (SAID, CONTEXT)
    while start > 0 and any(messages[start - 1].additional_kwargs.get(k) for k in kept):
        start -= 1
    return messages[start:]


def tool_transcript(log: list[ToolRecord]) -> list[str]:
    """The stored transcript's lines for the tools a turn ran (role "system")."""
    return [f"[tool {r.name}{'' if r.ok else ' failed'}] {r.summary}" for r in log]


class Agent(TurnPreparation, ToolRounds, ThreadEdits):
    def __init__(
        self,
        llm: LazyChatModel | None,
        memory: LongTermMemory,
        checkpointer: BaseCheckpointSaver,
        history_messages: int = 24,
        *,
        tools: ToolRegistry | None = None,
        make_env: EnvFactory | None = None,
        tool_mode: ToolMode = "off",
        max_tool_rounds: int = 4,
        tool_timeout_s: float = 15.0,
        chat: ChatStream | None = None,
    ) -> None:
        self.llm = llm  # LangChain's model, for calls off the turn's hot path
        self.chat = chat  # the turn's streamed calls (server/providers/chat_stream.py)
        self.memory = memory
        self.history_messages = history_messages
        self.tools = tools if tools is not None and make_env is not None else ToolRegistry()
        self.make_env = make_env
        self.tool_mode: ToolMode = tool_mode if len(self.tools) else "off"
        self.tools_refused = False  # auto mode: the endpoint said it cannot do tools
        self.max_tool_rounds = max_tool_rounds
        self.tool_timeout_s = tool_timeout_s
        self.tool_schemas = self.tools.schemas() if self.tool_mode != "off" else []
        self._wanted_mode: ToolMode = tool_mode
        g = StateGraph(GraphState, context_schema=TurnContext)
        # generate_response routes itself (a Command's goto): a conditional edge re-reads
        # the whole state, the node's writes applied to copies of the channels, to decide
        # what the node already knows (about 0.1 ms a turn).
        g.add_node(GENERATE, self.generate_response, destinations=(TOOLS, END))
        g.add_node(TOOLS, self.run_tools)
        g.add_node("update_memory", self.update_memory)
        g.add_edge(START, GENERATE)
        g.add_conditional_edges(TOOLS, self.route, {"respond": GENERATE, "silent": "update_memory"})
        g.add_edge("update_memory", END)
        self.graph = g.compile(checkpointer=checkpointer)

    def use_tools(self, tools: ToolRegistry) -> None:
        """Offer another set of tools from the next model call on (an MCP server came up
        or went away); a turn in progress goes on with the schemas it read."""
        self.tools = tools if self.make_env is not None else ToolRegistry()
        self.tool_mode = self._wanted_mode if len(self.tools) else "off"
        self.tool_schemas = self.tools.schemas() if self.tool_mode != "off" else []

    @property
    def tools_active(self) -> bool:
        return self.tool_mode == "on" or (self.tool_mode == "auto" and not self.tools_refused)

    # --- steps and nodes --------------------------------------------------------------
    # The branch function is async on purpose: LangGraph runs a sync one in a thread pool
    # (a thread hop, about 1 ms).
    @staticmethod
    async def route(state: GraphState) -> str:
        plan = state.get("action_plan") or {}
        return "silent" if plan.get("action") == "silent" else "respond"

    def new_meter(self) -> TurnMeter | None:
        """A meter for one turn's LLM calls (TurnContext.meter); None without a model."""
        return self.chat.new_meter() if self.chat is not None else None

    async def generate_response(
        self, state: GraphState, runtime: Runtime[TurnContext]
    ) -> Command[Literal["tools", "__end__"]]:
        """One model call: tool calls go to the tools node, an answer ends the turn. The
        turn's first call prepares the turn first (its plan may be to stay silent)."""
        ctx = runtime.context
        prepared: dict[str, Any] = {}
        if state.get("action_plan") is None:  # stream_turn starts each turn without one
            prepared = await self.prepare_turn(state, runtime)
            ctx.emit({PREPARE: prepared})  # for stream_turn, as a node's update would be
            if (prepared.get("action_plan") or {}).get("action") == "silent":
                return Command(update=prepared, goto=END)
            state = cast(GraphState, {**state, **prepared})
        if self.chat is None:
            raise LLMNotConfigured()
        chat = self.chat
        tools = ctx.tool_env is not None and self.tools_active
        client = {t["function"]["name"] for t in ctx.client_tools}

        def prompt(with_tools: bool) -> list[dict[str, Any]]:
            system = build_system_prompt(
                ctx.persona,
                ctx.persona.style_for(ctx.user_turns),
                memories=state.get("memory_context"),
                visual_context=state.get("visual_context"),
                affect=state.get("affect"),
                instructions=ctx.instructions,
                instructions_mode=ctx.instructions_mode,
                tools=with_tools,
                now_iso=utcnow().isoformat(timespec="minutes") if with_tools else None,
            )
            history = prompt_window(state["messages"], self.history_messages)
            return [{"role": "system", "content": system}, *map(to_openai, history)]

        # each piece of text goes straight to stream_turn (TurnContext.emit)
        def on_delta(text: str) -> None:
            ctx.emit(TurnDelta(text))

        opts: dict[str, Any] = {
            "temperature": ctx.temperature,
            "max_tokens": ctx.max_tokens,
            "meter": ctx.meter,
            "flush_s": ctx.flush_s,
        }
        rounds = state.get("tool_rounds", 0)
        last_round = rounds >= self.max_tool_rounds
        if tools:
            # the last round may not call tools again: it must answer
            choice = "none" if last_round else None
            try:
                offered = [*self.tool_schemas, *ctx.client_tools]
                result = await chat.stream(
                    prompt(True), on_delta, tools=offered, tool_choice=choice, **opts
                )
            except openai.APIStatusError as e:
                if self.tool_mode != "auto" or not refuses_tools(e):
                    raise
                # remembered for the life of the process: no turn pays this twice
                self.tools_refused = True
                log.warning("llm_tools_refused", status=e.status_code, fallback="no tools")
                tools = False
        if not tools:
            result = await chat.stream(prompt(False), on_delta, **opts)
        reply = to_ai_message(result)
        calls = reply.tool_calls if isinstance(reply, AIMessage) else []
        if tools and not last_round and any(c["name"] in client for c in calls):
            # the client runs these: the turn ends with them (its answer continues it)
            for c in calls:
                if c["name"] in client:
                    args = json.dumps(c["args"], ensure_ascii=False)
                    ctx.emit(ClientCall(c["id"] or "", c["name"], args))
            reply = AIMessage(reply.content, id=reply.id, usage_metadata=reply.usage_metadata)
        if isinstance(reply, AIMessage) and (reply.tool_calls or reply.invalid_tool_calls):
            if not tools or last_round:  # calls we will not run must not enter the history
                reply = AIMessage(reply.content, id=reply.id, usage_metadata=reply.usage_metadata)
        if ctx.reply_id and not (isinstance(reply, AIMessage) and reply.tool_calls):
            reply.id = ctx.reply_id  # the answer: the same id as in the store
        if isinstance(reply, AIMessage) and (reply.tool_calls or reply.invalid_tool_calls):
            # the tools node runs them
            return Command(update=prepared | {"messages": [reply]}, goto=TOOLS)
        # The answer: update_memory runs here, not as a graph step of its own after it.
        answered = cast(GraphState, {**state, "messages": [*state["messages"], reply]})
        done = await self.update_memory(answered, runtime)
        return Command(update=prepared | {"messages": [reply, *done.get("messages", [])]}, goto=END)

    async def update_memory(
        self, state: GraphState, runtime: Runtime[TurnContext]
    ) -> dict[str, Any]:
        await runtime.context.confirmed()  # a preemptive start saves no memory unconfirmed
        msgs = state["messages"]
        last = msgs[-1] if msgs else None
        if isinstance(last, AIMessage) and not last.tool_calls and last.content:
            said = strip_marks(str(last.content), runtime.context.persona.emotion_marks or None)
            self.memory.add_background(
                state["user_id"],
                [
                    {"role": "user", "content": last_human_text(msgs)},
                    {"role": "assistant", "content": said},
                ],
            )
        # The thread's state keeps only what a prompt can use, so loading and saving it costs
        # the same on turn 500 as on turn 5. The full history stays in the store's messages,
        # and long-term facts in mem0.
        old = msgs[: -self.history_messages]
        return {"messages": [RemoveMessage(id=m.id) for m in old if m.id]} if old else {}

    # --- running turns ----------------------------------------------------------------

    def start_memory_search(self, user_id: str, query: str) -> MemorySearch | None:
        """Start query_memory's search now, as soon as the user's words are known; a turn
        given it in ``TurnContext.memory_search`` awaits it instead of searching. None when
        memory is off."""
        if not self.memory.enabled:
            return None
        task = asyncio.ensure_future(self.memory.search(user_id, query))
        return MemorySearch(user_id, query, task)

    async def stream_turn(
        self,
        user_id: str,
        thread_id: str,
        text: str,
        ctx: TurnContext,
        message_id: str | None = None,
        after: list[BaseMessage] | None = None,
        run_tag: str | None = None,
    ) -> AsyncIterator[TurnDelta | TurnEmotion | ClientCall | ToolProgress | TurnFinished]:
        """Yield text deltas of the reply as the LLM streams them (emotion marks cut out
        and yielded as TurnEmotion where they stood), then TurnFinished with the clean text.
        ``message_id``: the id the user's message has in the store. ``after``: messages
        that follow it before the model answers (a decided call's exchange, resume_call).
        ``run_tag``: marks the checkpoint this run writes, so ``forget_run`` can drop it."""
        if ctx.tool_env is None and self.make_env is not None and self.tools_active:
            ctx.tool_env = self.make_env(user_id, ctx.perception)
        inp: GraphState = {
            "messages": [HumanMessage(text, id=message_id), *(after or [])],
            "user_id": user_id,
            "persona_id": ctx.persona.id,
            "visual_context": None,
            "affect": None,
            "memory_context": [],
            "action_plan": None,
            "tool_rounds": 0,
        }
        parts: list[str] = []
        marks = MarkFilter(ctx.persona.emotion_marks or None)
        usage = {"input_tokens": 0, "output_tokens": 0}
        plan: dict[str, Any] = {}
        t_mem = time.perf_counter()
        mem_ms = 0.0
        # The graph runs in a task of its own; what its nodes emit (ctx.emit) and its
        # per-node updates meet in one queue, in the order they happened.
        items: asyncio.Queue[object] = asyncio.Queue()
        ctx.emit = items.put_nowait
        # query_memory's search, unless the caller started it already (the hub does, on
        # the user's words): it runs alongside the checkpoint load and perceive
        query = last_human_text(inp["messages"])
        started = ctx.memory_search
        if started is not None and (started.user_id, started.query) != (user_id, query):
            started.task.cancel()
            started = None
        ctx.memory_search = started or self.start_memory_search(user_id, query)
        run = asyncio.ensure_future(self._run_graph(inp, thread_id, run_tag, ctx, items))
        try:
            while (item := await items.get()) is not _END:
                if isinstance(item, TurnDelta):
                    for piece in marks.push(item.text):
                        if isinstance(piece, Mark):
                            if piece.emotion is not None:
                                yield TurnEmotion(piece.emotion)
                        elif piece:
                            parts.append(piece)
                            yield TurnDelta(piece)
                elif not isinstance(item, dict):  # ClientCall, ToolProgress
                    yield item  # type: ignore[misc]
                elif PREPARE in item:  # memory was searched (the plan takes no time)
                    mem_ms = (time.perf_counter() - t_mem) * 1000
                    plan = (item[PREPARE] or {}).get("action_plan") or plan
                elif GENERATE in item:
                    for m in (item[GENERATE] or {}).get("messages", []):
                        if isinstance(m, AIMessage) and m.usage_metadata:
                            usage["input_tokens"] += m.usage_metadata.get("input_tokens", 0)
                            usage["output_tokens"] += m.usage_metadata.get("output_tokens", 0)
                elif (item.get(TOOLS) or {}).get("action_plan"):
                    plan = item[TOOLS]["action_plan"]
            await run  # the graph's own failure, if it failed
        finally:
            if not run.done():  # cancelled (barge-in) or closed: the graph run stops too,
                run.cancel()  # and what it writes as it stops is written before we go on
                with contextlib.suppress(BaseException):
                    await run
            if ctx.memory_search is not None:  # the graph ended before query_memory
                ctx.memory_search.task.cancel()
                ctx.memory_search = None
        for piece in marks.flush():  # an unfinished "[..." at the very end is text
            if isinstance(piece, str) and piece:
                parts.append(piece)
                yield TurnDelta(piece)
        silent = not parts and plan.get("action") == "silent"
        reason = plan.get("reason") if silent else None
        yield TurnFinished("".join(parts), silent, usage, mem_ms, reason)

    async def _run_graph(
        self,
        inp: GraphState,
        thread_id: str,
        run_tag: str | None,
        ctx: TurnContext,
        items: asyncio.Queue[object],
    ) -> None:
        """One turn through the graph; each node's update goes to ``items``, then _END.
        durability="exit": one checkpoint write per turn instead of one per node; a
        cancelled turn is written by record_interrupted instead."""
        try:
            async for update in self.graph.astream(
                inp,
                self.config(thread_id, run_tag),
                context=ctx,
                stream_mode="updates",
                durability="exit",
            ):
                items.put_nowait(update)
        finally:
            items.put_nowait(_END)
