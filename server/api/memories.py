"""What the companion remembers about the caller: list, forget one, forget all. Only the
caller's own memories; another user's id answers 404 like an unknown one. (The agent's
memory tools are not HTTP endpoints: these are the user's own controls.)"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query

from server.agent.memory import MemoryNotFound, MemoryUnavailable
from server.api.deps import ServicesDep, UserDep

router = APIRouter(prefix="/v1/memories", tags=["memories"])


def _unavailable(e: MemoryUnavailable) -> HTTPException:
    return HTTPException(503, str(e))


@router.get("", summary="The caller's memories, most recently updated first")
async def list_memories(
    services: ServicesDep,
    user: UserDep,
    limit: Annotated[int | None, Query(ge=1)] = None,
) -> dict[str, Any]:
    cap = services.settings.memory_list_max
    if limit is not None and limit > cap:
        raise HTTPException(422, f"limit is at most {cap} (MEMORY_LIST_MAX).")
    try:
        hits = await services.memory.list(user, limit or cap)
    except MemoryUnavailable as e:
        raise _unavailable(e) from None
    return {
        "memories": [h.as_dict() for h in hits],
        "categories": await services.memory.vocabulary.get_all_terms(),
    }


@router.delete("/{memory_id}", summary="Forget one memory")
async def delete_memory(memory_id: str, services: ServicesDep, user: UserDep) -> dict[str, Any]:
    try:
        hit = await services.memory.delete(user, memory_id)
    except MemoryNotFound:
        raise HTTPException(404, "No such memory for this user.") from None
    except MemoryUnavailable as e:
        raise _unavailable(e) from None
    return {"deleted": hit.id}


@router.delete("", summary="Forget everything remembered about the caller")
async def delete_all_memories(services: ServicesDep, user: UserDep) -> dict[str, Any]:
    try:
        n = await services.memory.delete_all(user)
    except MemoryUnavailable as e:
        raise _unavailable(e) from None
    return {"deleted": n}
