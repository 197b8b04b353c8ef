"""The tool registry: what a tool is, what it may touch in a turn, and its OpenAI schema.

A tool is a pydantic argument model plus an async function. Registration is generic so
later layers (MCP tools, an approval gate for `consequential` tools) plug in without the
graph changing: the graph only asks the registry for schemas and calls `Tool.run`."""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError

if TYPE_CHECKING:
    from server.agent.memory import LongTermMemory
    from server.agent.state import Perception
    from server.config import Settings
    from server.reminders import ReminderWatchers
    from server.store.base import Store

NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")  # OpenAI's rule for function names


class ToolError(Exception):
    """A refusal or failure the model is told about (it may correct itself and retry)."""


@dataclass
class ToolEnv:
    """What the tools of one turn may touch. ``read_ids`` holds the memory ids that
    query_memory or search_memory returned in this turn (Read-then-Write)."""

    user_id: str
    settings: Settings
    store: Store
    memory: LongTermMemory
    reminders: ReminderWatchers
    perception: Perception | None = None
    read_ids: set[str] = field(default_factory=set)
    silence: str | None = None  # set by stay_silent: the turn ends without a reply


@dataclass
class ToolOutcome:
    result: dict[str, Any]  # what the model reads (as JSON)
    summary: str  # what people read (studio, transcript)
    data: dict[str, Any] = field(default_factory=dict)  # structured bits for clients


Run = Callable[[Any, ToolEnv], Awaitable[ToolOutcome]]


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    args: type[BaseModel]
    run: Run
    consequential: bool = False  # changes the world beyond the conversation
    # a refusal known before running (ToolError), e.g. Read-then-Write: a consequential
    # call is checked before the user is asked, so nobody approves a call that would fail
    precheck: Callable[[Any, ToolEnv], None] | None = None
    # what the user is asked to approve, in their terms (default: the description)
    explain: Callable[[Any, ToolEnv], Awaitable[str]] | None = None

    def __post_init__(self) -> None:
        if not NAME.match(self.name):
            raise ValueError(f"invalid tool name {self.name!r}")

    def check(self, parsed: BaseModel, env: ToolEnv) -> None:
        if self.precheck is not None:
            self.precheck(parsed, env)

    async def explained(self, parsed: BaseModel, env: ToolEnv) -> str:
        """The call as the approval request describes it to the user."""
        if self.explain is None:
            return self.description
        try:
            return await self.explain(parsed, env)
        except ToolError:
            return self.description

    def parse(self, arguments: dict[str, Any] | str) -> BaseModel:
        """Validate the model's arguments; a ToolError says what was wrong."""
        try:
            if isinstance(arguments, str):
                return self.args.model_validate_json(arguments or "{}")
            return self.args.model_validate(arguments or {})
        except ValidationError as e:
            problems = "; ".join(
                f"{'.'.join(map(str, err['loc'])) or 'arguments'}: {err['msg']}"
                for err in e.errors()
            )
            raise ToolError(f"Invalid arguments for {self.name}: {problems}") from None

    def openai_schema(self) -> dict[str, Any]:
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": json_schema(self.args),
            },
        }


def json_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The model's JSON schema in the plain form function-calling models read best: no
    titles, optional fields as their own type (not anyOf with null)."""

    def clean(node: Any) -> Any:
        if isinstance(node, dict):
            node = {k: clean(v) for k, v in node.items() if k != "title"}
            options = node.get("anyOf")
            if isinstance(options, list):
                kept = [o for o in options if o.get("type") != "null"]
                if len(kept) == 1 and len(kept) < len(options):
                    node.pop("anyOf")
                    node.pop("default", None)
                    node = {**kept[0], **node}
            return node
        if isinstance(node, list):
            return [clean(v) for v in node]
        return node

    schema = clean(model.model_json_schema())
    schema.setdefault("properties", {})
    schema["type"] = "object"
    return schema


class ToolRegistry:
    def __init__(self, tools: list[Tool] | None = None) -> None:
        self._tools: dict[str, Tool] = {}
        for t in tools or []:
            self.register(t)

    def register(self, tool: Tool) -> None:
        if tool.name in self._tools:
            raise ValueError(f"tool {tool.name!r} is registered twice")
        self._tools[tool.name] = tool

    def get(self, name: str) -> Tool | None:
        return self._tools.get(name)

    def __iter__(self) -> Iterator[Tool]:
        return iter(self._tools.values())

    def __len__(self) -> int:
        return len(self._tools)

    def schemas(self) -> list[dict[str, Any]]:
        return [t.openai_schema() for t in self]


def to_json(result: dict[str, Any]) -> str:
    return json.dumps(result, ensure_ascii=False, default=str)
