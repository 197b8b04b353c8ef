"""The persona turn as a LangGraph graph (seed 000's node names):

perceive_environment -> query_memory -> reason_and_plan -(respond)-> generate_response
                                                       \\-(silent)-> END
generate_response -(tool calls)-> tools -> generate_response ... -(answer)-> update_memory
                                       \\-(stay_silent)-> update_memory

The tools are bound on the same streamed call that answers, so a turn without a tool call
costs no extra LLM round-trip; when the streamed message carries tool calls, the tools node
runs them and the model is called again (at most AGENT_MAX_TOOL_ROUNDS times).
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import openai
from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    HumanMessage,
    RemoveMessage,
    ToolMessage,
)
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.config import get_stream_writer
from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime

from server.agent.memory import LongTermMemory
from server.agent.prompts import build_system_prompt
from server.agent.state import GraphState, Perception, ToolRecord, TurnContext
from server.agent.tools import ToolEnv, ToolError, ToolOutcome, ToolRegistry, to_json
from server.agent.wire import to_ai_message, to_openai
from server.avatar.emotions import Mark, MarkFilter, strip_marks
from server.logging import get_logger
from server.providers.chat_stream import ChatStream
from server.providers.llm import LazyChatModel, LLMNotConfigured
from server.providers.usage_meter import TurnMeter
from server.store.base import utcnow

log = get_logger(__name__)

PERCEIVE = "perceive_environment"
GENERATE = "generate_response"
TOOLS = "tools"
_FILLER = re.compile(r"^[\s.,!?…~\-]*((um+|uh+|hmm+|음+|어+|아+|으+)[\s.,!?…~\-]*)*$", re.I)
_TOOLS_REFUSED = re.compile(r"tool|function", re.I)
SAID = "said"  # additional_kwargs flag of a line the persona said on its own (record_said)
RUN_TAG = "run_tag"  # checkpoint metadata: the run that wrote it (Agent.forget_run)

ToolMode = Literal["auto", "on", "off"]
EnvFactory = Callable[[str, Perception | None], ToolEnv]


def last_human_text(messages: list[BaseMessage]) -> str:
    for m in reversed(messages):
        if isinstance(m, HumanMessage):
            return m.text if hasattr(m, "text") else str(m.content)
    return ""


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
    # lines the persona said on its own just before (a task preview): the user answers them
    while start > 0 and messages[start - 1].additional_kwargs.get(SAID):
        start -= 1
    return messages[start:]


def tool_transcript(log: list[ToolRecord]) -> list[str]:
    """The stored transcript's lines for the tools a turn ran (role "system")."""
    return [f"[tool {r.name}{'' if r.ok else ' failed'}] {r.summary}" for r in log]


@dataclass
class TurnDelta:
    text: str


@dataclass
class TurnEmotion:
    """The persona marked an emotion here, between the deltas around it (the mark itself
    never reaches the text: server/avatar/emotions.py)."""

    emotion: str


@dataclass
class ClientCall:
    """The model called a function the client runs (ctx.client_tools): the turn ends here;
    the client answers with the result, which continues it (Agent.client_exchange)."""

    call_id: str
    name: str
    arguments: str  # JSON text, as the model wrote it


@dataclass
class ToolProgress:
    """A tool call finished (its events went out through ctx.on_tool_event). Consumers
    skip it; it is yielded so stream timeouts see the turn is alive between LLM calls."""

    name: str


@dataclass
class TurnFinished:
    text: str
    silent: bool
    usage: dict[str, int] = field(default_factory=dict)
    memory_ms: float = 0.0
    silent_reason: str | None = None


class Agent:
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
        g.add_node(PERCEIVE, self.perceive_environment)
        g.add_node("query_memory", self.query_memory)
        g.add_node("reason_and_plan", self.reason_and_plan)
        g.add_node(GENERATE, self.generate_response)
        g.add_node(TOOLS, self.run_tools)
        g.add_node("update_memory", self.update_memory)
        g.add_edge(START, PERCEIVE)
        g.add_edge(PERCEIVE, "query_memory")
        g.add_edge("query_memory", "reason_and_plan")
        g.add_conditional_edges("reason_and_plan", self.route, {"respond": GENERATE, "silent": END})
        g.add_conditional_edges(
            GENERATE, self.after_generate, {TOOLS: TOOLS, "done": "update_memory"}
        )
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

    # --- nodes ------------------------------------------------------------------------
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
        """Search-Before-Act: always look the user up before any reply is generated."""
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

    # The branch functions are async on purpose: LangGraph runs a sync one in a thread pool
    # (a thread hop, about 1 ms, twice per turn).
    @staticmethod
    async def route(state: GraphState) -> str:
        plan = state.get("action_plan") or {}
        return "silent" if plan.get("action") == "silent" else "respond"

    @staticmethod
    async def after_generate(state: GraphState) -> str:
        last = state["messages"][-1]
        if isinstance(last, AIMessage) and (last.tool_calls or last.invalid_tool_calls):
            return TOOLS
        return "done"

    def new_meter(self) -> TurnMeter | None:
        """A meter for one turn's LLM calls (TurnContext.meter); None without a model."""
        return self.chat.new_meter() if self.chat is not None else None

    async def generate_response(
        self, state: GraphState, runtime: Runtime[TurnContext]
    ) -> dict[str, Any]:
        if self.chat is None:
            raise LLMNotConfigured()
        chat = self.chat
        ctx = runtime.context
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

        # each piece of text goes straight to stream_turn through the custom stream
        write = get_stream_writer()

        def on_delta(text: str) -> None:
            write(TurnDelta(text))

        opts: dict[str, Any] = {
            "temperature": ctx.temperature,
            "max_tokens": ctx.max_tokens,
            "meter": ctx.meter,
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
                    write(ClientCall(c["id"] or "", c["name"], args))
            reply = AIMessage(reply.content, id=reply.id, usage_metadata=reply.usage_metadata)
        if isinstance(reply, AIMessage) and (reply.tool_calls or reply.invalid_tool_calls):
            if not tools or last_round:  # calls we will not run must not enter the history
                reply = AIMessage(reply.content, id=reply.id, usage_metadata=reply.usage_metadata)
        if ctx.reply_id and not (isinstance(reply, AIMessage) and reply.tool_calls):
            reply.id = ctx.reply_id  # the answer: the same id as in the store
        return {"messages": [reply]}

    async def run_tools(self, state: GraphState, runtime: Runtime[TurnContext]) -> dict[str, Any]:
        """Run the last message's tool calls in order. A call that started always finishes
        and is recorded, even if the turn is cancelled meanwhile (barge-in); calls after
        it never start. stay_silent ends the turn after its round."""
        ctx = runtime.context
        await ctx.confirmed()  # a preemptive start runs no tool before its turn is confirmed
        env = ctx.tool_env
        assert env is not None
        last = state["messages"][-1]
        assert isinstance(last, AIMessage)
        calls = [(c["id"] or "", c["name"], c["args"]) for c in last.tool_calls]
        calls += [
            (c.get("id") or "", c.get("name") or "", c.get("args") or "")
            for c in last.invalid_tool_calls
        ]
        out: list[BaseMessage] = []
        for call_id, name, args in calls:
            if env.silence is not None:
                content = to_json({"skipped": "the turn ended with stay_silent"})
                out.append(ToolMessage(content, tool_call_id=call_id, name=name))
                continue
            rec = await self._call_tool(ctx, env, call_id, name, args)
            out.append(ToolMessage(rec.content, tool_call_id=call_id, name=name))
            get_stream_writer()({"tool_done": name})
        update: dict[str, Any] = {"messages": out, "tool_rounds": state.get("tool_rounds", 0) + 1}
        if env.silence is not None:
            update["action_plan"] = {"action": "silent", "reason": env.silence}
        return update

    async def _call_tool(
        self, ctx: TurnContext, env: ToolEnv, call_id: str, name: str, args: Any
    ) -> ToolRecord:
        shown = args if isinstance(args, dict) else {"raw": str(args)}
        if ctx.on_tool_event:
            await ctx.on_tool_event(
                {"type": "response.tool_call", "call_id": call_id, "name": name, "arguments": shown}
            )

        tool = self.tools.get(name)
        if tool is None or not tool.consequential:
            return await self._run_recorded(ctx, env, call_id, name, args, shown)
        try:  # a call that would be refused anyway is refused before the user is asked
            parsed = tool.parse(args)
            tool.check(parsed, env)
        except ToolError as e:
            outcome = ToolOutcome({"error": str(e)}, f"{name} refused: {e}")
            return await self._record(ctx, call_id, name, shown, False, outcome)
        if ctx.approve is None:
            msg = f"{name} needs the user's approval, which cannot be asked here."
            return await self._record(
                ctx, call_id, name, shown, False, ToolOutcome({"error": msg}, msg)
            )
        described = await tool.explained(parsed, env)
        decision = await self._approval(ctx, call_id, name, shown, described)
        return await self.run_decided(ctx, env, call_id, name, args, decision)

    async def run_decided(
        self, ctx: TurnContext, env: ToolEnv, call_id: str, name: str, args: Any, decision: Any
    ) -> ToolRecord:
        """A consequential call the user decided on (approvals.Decision): run with the
        approved or edited arguments (checked when it was asked), or record why not."""
        shown = args if isinstance(args, dict) else {"raw": str(args)}
        if decision.elsewhere:
            msg = f"The user answered ({decision.status}) on another device, which handled {name}."
            return await self._record(
                ctx, call_id, name, shown, False, ToolOutcome({"note": msg}, msg)
            )
        if not decision.go:
            why = decision.message or decision.status
            msg = f"The user did not approve {name} ({decision.status}): {why}"
            outcome = ToolOutcome({"error": msg}, f"{name} {decision.status} by the user")
            return await self._record(ctx, call_id, name, shown, False, outcome)
        if decision.arguments is not None:  # edited by the user
            args = shown = decision.arguments
        return await self._run_recorded(ctx, env, call_id, name, args, shown, checked=True)

    async def _run_recorded(
        self,
        ctx: TurnContext,
        env: ToolEnv,
        call_id: str,
        name: str,
        args: Any,
        shown: dict[str, Any],
        checked: bool = False,
    ) -> ToolRecord:
        async def run_and_record() -> ToolRecord:
            ok, outcome = await self._execute(name, args, env, checked)
            return await self._record(ctx, call_id, name, shown, ok, outcome)

        # Shielded: a barge-in during the call cancels the turn, not the tool, so its effect
        # is whole, logged and reported (ctx.settle_tools waits for it); later calls of the
        # round never start.
        task = asyncio.ensure_future(run_and_record())
        ctx.running_tools.add(task)
        task.add_done_callback(ctx.running_tools.discard)
        return await asyncio.shield(task)

    async def _approval(
        self, ctx: TurnContext, call_id: str, name: str, args: dict[str, Any], description: str
    ) -> Any:
        """Wait for the user's decision (server/agent/approvals.py), telling the stream the
        turn is alive meanwhile so the LLM idle timeout does not fire. A cancel (barge-in,
        disconnect) stops the wait; the approval stays pending and is asked again later."""
        assert ctx.approve is not None
        writer = get_stream_writer()
        ask = asyncio.ensure_future(ctx.approve(call_id, name, args, description))
        try:
            while True:
                done, _ = await asyncio.wait({ask}, timeout=1.0)
                if done:
                    return ask.result()
                writer({"tool_waiting": name})
        finally:
            ask.cancel()

    async def _record(
        self,
        ctx: TurnContext,
        call_id: str,
        name: str,
        args: dict[str, Any],
        ok: bool,
        outcome: ToolOutcome,
    ) -> ToolRecord:
        rec = ToolRecord(call_id, name, args, ok, outcome.summary, to_json(outcome.result))
        ctx.tool_log.append(rec)
        if ctx.on_tool_event:
            await ctx.on_tool_event(
                {
                    "type": "response.tool_result",
                    "call_id": call_id,
                    "name": name,
                    "ok": ok,
                    "summary": outcome.summary,
                    "data": outcome.data,
                }
            )
        return rec

    async def _execute(
        self, name: str, args: Any, env: ToolEnv, checked: bool = False
    ) -> tuple[bool, ToolOutcome]:
        """(ok, outcome); a refusal or failure becomes an error the model reads.
        ``checked``: the tool's own check passed when the user was asked."""
        tool = self.tools.get(name)
        t0 = time.perf_counter()
        try:
            if tool is None:
                raise ToolError(f"There is no tool named {name!r}.")
            parsed = tool.parse(args)
            if not checked:
                tool.check(parsed, env)
            async with asyncio.timeout(self.tool_timeout_s):
                outcome = await tool.run(parsed, env)
            ok = True
        except ToolError as e:
            ok, outcome = False, ToolOutcome({"error": str(e)}, f"{name} refused: {e}")
        except TimeoutError:
            msg = f"{name} took longer than {self.tool_timeout_s:g} s and was stopped."
            ok, outcome = False, ToolOutcome({"error": msg}, msg)
        except Exception as e:
            log.exception("tool_failed", tool=name)
            msg = f"{name} failed because of a server error ({type(e).__name__})."
            ok, outcome = False, ToolOutcome({"error": msg}, msg)
        log.info("tool_done", tool=name, ok=ok, ms=round((time.perf_counter() - t0) * 1000, 2))
        return ok, outcome

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
    @staticmethod
    def config(thread_id: str, run_tag: str | None = None) -> RunnableConfig:
        """``run_tag`` marks the checkpoints a run writes (``forget_run``)."""
        cfg: RunnableConfig = {"configurable": {"thread_id": thread_id}}
        if run_tag is not None:
            cfg["metadata"] = {RUN_TAG: run_tag}
        return cfg

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
        # durability="exit": one checkpoint write per turn instead of one per node; a
        # cancelled turn is written by record_interrupted instead.
        async for mode, chunk in self.graph.astream(
            inp,
            self.config(thread_id, run_tag),
            context=ctx,
            stream_mode=["custom", "updates"],
            durability="exit",
        ):
            if mode == "custom":
                if isinstance(chunk, TurnDelta):
                    for piece in marks.push(chunk.text):
                        if isinstance(piece, Mark):
                            if piece.emotion is not None:
                                yield TurnEmotion(piece.emotion)
                        elif piece:
                            parts.append(piece)
                            yield TurnDelta(piece)
                elif isinstance(chunk, ClientCall):
                    yield chunk
                elif isinstance(chunk, dict) and ("tool_done" in chunk or "tool_waiting" in chunk):
                    yield ToolProgress(chunk.get("tool_done") or chunk["tool_waiting"])
            elif "query_memory" in chunk:
                mem_ms = (time.perf_counter() - t_mem) * 1000
            elif GENERATE in chunk:
                for m in (chunk[GENERATE] or {}).get("messages", []):
                    if isinstance(m, AIMessage) and m.usage_metadata:
                        usage["input_tokens"] += m.usage_metadata.get("input_tokens", 0)
                        usage["output_tokens"] += m.usage_metadata.get("output_tokens", 0)
            else:
                for node in ("reason_and_plan", TOOLS):
                    if (chunk.get(node) or {}).get("action_plan"):
                        plan = chunk[node]["action_plan"]
        for piece in marks.flush():  # an unfinished "[..." at the very end is text
            if isinstance(piece, str) and piece:
                parts.append(piece)
                yield TurnDelta(piece)
        silent = not parts and plan.get("action") == "silent"
        reason = plan.get("reason") if silent else None
        yield TurnFinished("".join(parts), silent, usage, mem_ms, reason)

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
        if start is None:
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
