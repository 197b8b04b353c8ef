"""What long-term memory gives its callers: a MemoryHit per memory (with the tier it was
found in), the two errors the tools and the REST API turn into words, and the reading of
mem0's result shapes into hits. Apart from the wrapper (longterm.py): these are the shapes
its callers handle, and none of them depends on how mem0 is started or searched."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

Tier = Literal["fresh", "old"]


class MemoryUnavailable(RuntimeError):
    """Memory is disabled or failed to start."""


class MemoryNotFound(LookupError):
    """No memory with this id for this user (another user's id looks the same)."""


@dataclass
class MemoryHit:
    id: str
    memory: str
    category: str | None
    created_at: str | None
    updated_at: str | None
    source: str | None
    tier: Tier

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def hit_of(item: dict[str, Any], tier: Tier) -> MemoryHit:
    """One mem0 item (from search, get or get_all) as a hit of ``tier``."""
    meta = item.get("metadata") or {}
    return MemoryHit(
        id=str(item["id"]),
        memory=str(item.get("memory", "")),
        category=meta.get("category") or item.get("category"),
        created_at=item.get("created_at"),
        updated_at=item.get("updated_at") or item.get("created_at"),
        source=meta.get("source") or item.get("source"),
        tier=tier,
    )


def items_of(res: Any) -> list[dict[str, Any]]:
    """mem0 answers with {"results": [...]} or a bare list."""
    return list(res.get("results", []) if isinstance(res, dict) else res or [])
