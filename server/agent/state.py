"""LangGraph state (checkpointed per thread) and the per-turn runtime context (not stored)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any, Protocol, TypedDict

from langchain_core.messages import AnyMessage
from langgraph.graph.message import add_messages

from server.personas import Persona


class GraphState(TypedDict, total=False):
    messages: Annotated[list[AnyMessage], add_messages]
    visual_context: str | None
    action_plan: dict[str, Any] | None
    user_id: str
    persona_id: str
    intimacy: int
    memory_context: list[str]
    affect: dict[str, Any] | None


class Perception(Protocol):
    """What the session currently perceives; the perceive node reads it."""

    def latest_visual(self) -> str | None: ...

    def latest_affect(self) -> dict[str, Any] | None: ...

    async def fresh_visual(self, timeout_s: float) -> str | None:
        """Wait (bounded) for a description newer than the turn start."""
        ...


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
    on_memory_searched: Callable[[list[str]], Awaitable[None]] | None = None
    # The id the reply gets in the graph's history; the store keeps it under the same id
    # (server/agent/history_sync.py matches the two by id).
    reply_id: str | None = None
