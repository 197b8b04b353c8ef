"""Memory tools (seed 000, 2.3.1 B): search, add, update, delete one memory.

Read-then-Write is enforced here, not only in the prompt: update_memory and delete_memory
accept only an id that query_memory or search_memory returned in this same turn."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from server.agent.memory import CategoryRefused, MemoryNotFound, MemoryUnavailable
from server.agent.memory.vocabulary import normalise
from server.agent.tools.base import Tool, ToolEnv, ToolError, ToolOutcome

SEARCH_FIRST = (
    "Refused: {name} only accepts a memory_id that search_memory (or the memories listed in "
    "your instructions) returned in this turn. Call search_memory first, then use an id "
    "from its results."
)


class SearchMemory(BaseModel):
    model_config = ConfigDict(extra="forbid")
    query: Annotated[str, Field(min_length=1, max_length=1000, description="What to look for")]
    category: str | None = Field(default=None, description="Only this category")
    limit: Annotated[int, Field(ge=1, le=20)] | None = Field(
        default=None, description="At most this many memories"
    )


class AddMemory(BaseModel):
    model_config = ConfigDict(extra="forbid")
    content: Annotated[str, Field(min_length=1, max_length=2000, description="The fact")]
    category: Annotated[str, Field(min_length=1, max_length=40, description="A category")]


class UpdateMemory(BaseModel):
    model_config = ConfigDict(extra="forbid")
    memory_id: Annotated[str, Field(min_length=1, max_length=100)]
    content: Annotated[str, Field(min_length=1, max_length=2000, description="The new text")]
    category: str | None = Field(default=None, description="A new category, if it changed")


class DeleteMemory(BaseModel):
    model_config = ConfigDict(extra="forbid")
    memory_id: Annotated[str, Field(min_length=1, max_length=100)]


def _short(text: str, n: int = 80) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


async def search_memory(args: SearchMemory, env: ToolEnv) -> ToolOutcome:
    category = None
    if args.category:
        try:
            vocabulary = env.memory.vocabulary
            category = (
                await vocabulary.check(args.category)
                if vocabulary is not None
                else normalise(args.category)
            )
        except CategoryRefused as e:
            raise ToolError(str(e)) from None
    if not env.memory.enabled:
        raise ToolError("Long-term memory is not available on this server.")
    hits = await env.memory.search(env.user_id, args.query, args.limit, category)
    env.read_ids.update(h.id for h in hits)
    return ToolOutcome(
        {
            "memories": [
                {
                    "memory_id": h.id,
                    "content": h.memory,
                    "category": h.category,
                    "updated_at": h.updated_at,
                }
                for h in hits
            ]
        },
        f"searched memory: {len(hits)} found",
        {"count": len(hits)},
    )


async def add_memory(args: AddMemory, env: ToolEnv) -> ToolOutcome:
    try:
        memory_id = await env.memory.add(env.user_id, args.content, args.category)
    except (CategoryRefused, MemoryUnavailable) as e:
        raise ToolError(str(e)) from None
    return ToolOutcome(
        {"memory_id": memory_id},
        f"remembered: {_short(args.content)}",
        {"memory_id": memory_id, "content": args.content},
    )


def _require_read(name: str, memory_id: str, env: ToolEnv) -> None:
    if memory_id not in env.read_ids:
        raise ToolError(SEARCH_FIRST.format(name=name))


async def update_memory(args: UpdateMemory, env: ToolEnv) -> ToolOutcome:
    _require_read("update_memory", args.memory_id, env)
    try:
        hit = await env.memory.update(env.user_id, args.memory_id, args.content, args.category)
    except MemoryNotFound:
        raise ToolError("No such memory (it may have been deleted).") from None
    except (CategoryRefused, MemoryUnavailable) as e:
        raise ToolError(str(e)) from None
    return ToolOutcome(
        {"memory_id": hit.id, "updated_at": hit.updated_at},
        f"memory updated: {_short(hit.memory)}",
        {"memory_id": hit.id, "content": hit.memory},
    )


def _delete_read_first(args: DeleteMemory, env: ToolEnv) -> None:
    _require_read("delete_memory", args.memory_id, env)


async def _what_is_forgotten(args: DeleteMemory, env: ToolEnv) -> str:
    try:
        hit = await env.memory.find(env.user_id, args.memory_id)
    except (MemoryNotFound, MemoryUnavailable):
        raise ToolError("No such memory.") from None
    return f'Forget that "{_short(hit.memory)}"'


async def delete_memory(args: DeleteMemory, env: ToolEnv) -> ToolOutcome:
    """Forgetting is consequential: the user approves it (server/agent/approvals.py) after
    the Read-then-Write check (`_delete_read_first`) passed."""
    try:
        hit = await env.memory.delete(env.user_id, args.memory_id)
    except MemoryNotFound:
        raise ToolError("No such memory (it may have been deleted already).") from None
    except MemoryUnavailable as e:
        raise ToolError(str(e)) from None
    env.read_ids.discard(args.memory_id)
    return ToolOutcome(
        {"deleted": args.memory_id},
        f"forgot: {_short(hit.memory)}",
        {"memory_id": hit.id, "content": hit.memory},
    )


TOOLS = [
    Tool(
        "search_memory",
        "Search what you remember about the user. Returns memories with memory_id, "
        "category and updated_at. Search before changing or forgetting a memory.",
        SearchMemory,
        search_memory,
    ),
    Tool(
        "add_memory",
        "Remember a new, lasting fact about the user (name, preferences, plans, people). "
        "Do not store small talk. Returns the new memory_id.",
        AddMemory,
        add_memory,
    ),
    Tool(
        "update_memory",
        "Correct or update a memory. memory_id must come from search_memory (or your listed "
        "memories) in this turn.",
        UpdateMemory,
        update_memory,
    ),
    Tool(
        "delete_memory",
        "Forget a memory. Only when the user asked you to forget it. memory_id must come "
        "from search_memory (or your listed memories) in this turn.",
        DeleteMemory,
        delete_memory,
        consequential=True,
        precheck=_delete_read_first,
        explain=_what_is_forgotten,
    ),
]
