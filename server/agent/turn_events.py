"""What a persona turn streams to the hub (Agent.stream_turn): text, emotion marks, calls
of the client's functions, tool progress, and the end."""

from __future__ import annotations

from dataclasses import dataclass, field


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
