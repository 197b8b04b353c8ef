"""LangGraph state (checkpointed per thread) and the per-turn runtime context (not stored)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any, Protocol, TypedDict

from langchain_core.messages import AnyMessage
from langgraph.graph.message import add_messages

from server.personas import Persona
from server.providers.usage_meter import TurnMeter

if TYPE_CHECKING:
    from server.agent.tools import ToolEnv


class GraphState(TypedDict, total=False):
    messages: Annotated[list[AnyMessage], add_messages]
    visual_context: str | None
    action_plan: dict[str, Any] | None
    user_id: str
    persona_id: str
    intimacy: int
    memory_context: list[dict[str, Any]]  # {id, memory, category, updated_at}
    affect: dict[str, Any] | None
    tool_rounds: int  # model -> tools -> model rounds in this turn


class Perception(Protocol):
    """What the session currently perceives; the perceive node and get_screen_context read it."""

    def latest_visual(self) -> str | None: ...

    def latest_affect(self) -> dict[str, Any] | None: ...

    async def fresh_visual(self, timeout_s: float) -> str | None:
        """Wait (bounded) for a description newer than the turn start."""
        ...


ToolEvent = Callable[[dict[str, Any]], Awaitable[None]]


@dataclass
class ToolRecord:
    """One tool call that ran in this turn (kept so an interrupted turn can report it)."""

    call_id: str
    name: str
    arguments: dict[str, Any]
    ok: bool
    summary: str
    content: str  # what the model was told, JSON


@dataclass
class MemorySearch:
    """query_memory's search, started before the graph runs (Agent.start_memory_search)."""

    user_id: str
    query: str
    task: asyncio.Future[list[Any]]


def _unheard(_item: object) -> None:
    """TurnContext.emit of a run nobody streams."""


@dataclass
class TurnContext:
    persona: Persona
    user_turns: int
    instructions: str | None = None
    instructions_mode: str = "append"  # or "replace": the instructions are the whole persona
    temperature: float | None = None
    max_tokens: int | None = None
    perception: Perception | None = None
    vision_wait_s: float = 3.0
    on_memory_searched: Callable[[list[dict[str, Any]]], Awaitable[None]] | None = None
    # the memory search, started as soon as the user's words were known; query_memory
    # awaits it
    memory_search: MemorySearch | None = None
    # The id the reply gets in the graph's history; the store keeps it under the same id
    # (server/agent/history_sync.py matches the two by id).
    reply_id: str | None = None
    # response.tool_call / response.tool_result events, without the response_id (the
    # caller adds it); None: nobody is listening
    on_tool_event: ToolEvent | None = None
    tool_env: ToolEnv | None = None  # set by Agent.stream_turn when tools are offered
    # the user's decision on a consequential call (server/agent/approvals.py ApprovalGate.ask);
    # None: consequential tools run without asking (no one to ask)
    approve: Callable[[str, str, dict[str, Any], str], Awaitable[Any]] | None = None
    tool_log: list[ToolRecord] = field(default_factory=list)
    running_tools: set[asyncio.Task[Any]] = field(default_factory=set)
    # Functions the client runs itself (OpenAI Realtime session tools), as chat-completions
    # tool schemas: offered beside ours; a call to one ends the turn and goes to the client.
    client_tools: list[dict[str, Any]] = field(default_factory=list)
    # the turn's LLM calls as they happen (a reply cut short keeps its tokens); None: the
    # caller does not count them this way
    meter: TurnMeter | None = None
    # What the nodes stream to Agent.stream_turn (text deltas, client calls, tool
    # progress), set by it: a queue on the same loop. Not LangGraph's custom stream, which
    # costs a thread-safe wake-up, a waiter task and generator layers per text delta.
    emit: Callable[[object], None] = _unheard
    # A preemptive start (server/hub/preemptive.py): the model may stream its reply, but
    # nothing with an effect (a tool call, a memory write, the end of the turn) happens
    # until the turn is confirmed and this is set. None: an ordinary turn.
    gate: asyncio.Event | None = None
    # STREAM_FLUSH_MS in seconds: after the first text of an LLM call, its text is handed
    # on at most this often (server/providers/sse.py Cadence); 0: each piece as it comes
    flush_s: float = 0.0

    async def confirmed(self) -> None:
        """Wait until a preemptive start is confirmed (at once for an ordinary turn)."""
        if self.gate is not None:
            await self.gate.wait()

    async def settle_tools(self) -> None:
        """After a cancel: wait for a tool call that had started (each is bounded by its
        own timeout), so its effect is whole and in tool_log before the turn is recorded."""
        if self.running_tools:
            await asyncio.wait(set(self.running_tools))
