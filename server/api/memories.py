"""What the companion remembers about the caller: list, forget one, forget all. Only the
caller's own memories; another user's id answers 404 like an unknown one. (The agent's
memory tools are not HTTP endpoints: these are the user's own controls.)"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query

from server.agent.memory import MemoryNotFound, MemoryUnavailable
from server.api.deps import ServicesDep, UserDep
from server.logging import get_logger

router = APIRouter(prefix="/v1/memories", tags=["memories"])
log = get_logger(__name__)


@contextlib.asynccontextmanager
async def _memory_errors(timeout_s: float) -> AsyncIterator[None]:
    """Memory off, or its vector database failing or silent (a lost Postgres connection, a
    Qdrant server down): 503 with what failed, never a 500 or a hang."""
    try:
        async with asyncio.timeout(timeout_s):
            yield
    except TimeoutError:
        raise HTTPException(
            503, f"The memory store did not answer within {timeout_s:g} s (MEMORY_REST_TIMEOUT_S)."
        ) from None
    except MemoryNotFound:
        raise HTTPException(404, "No such memory for this user.") from None
    except MemoryUnavailable as e:
        raise HTTPException(503, str(e)) from None
    except Exception as e:  # mem0 and its vector stores raise their own kinds
        log.warning("memory_backend_failed", error=type(e).__name__)
        first = (str(e).strip().splitlines() or [""])[0][:200]
        raise HTTPException(
            503, f"The memory store failed ({type(e).__name__}: {first}); try again."
        ) from None


@router.get("", summary="The caller's memories, most recently updated first")
async def list_memories(
    services: ServicesDep,
    user: UserDep,
    limit: Annotated[int | None, Query(ge=1)] = None,
) -> dict[str, Any]:
    cap = services.settings.memory_list_max
    if limit is not None and limit > cap:
        raise HTTPException(422, f"limit is at most {cap} (MEMORY_LIST_MAX).")
    async with _memory_errors(services.settings.memory_rest_timeout_s):
        hits = await services.memory.list(user, limit or cap)
        categories = await services.memory.vocabulary.get_all_terms()
    return {"memories": [h.as_dict() for h in hits], "categories": categories}


@router.delete("/{memory_id}", summary="Forget one memory")
async def delete_memory(memory_id: str, services: ServicesDep, user: UserDep) -> dict[str, Any]:
    async with _memory_errors(services.settings.memory_rest_timeout_s):
        hit = await services.memory.delete(user, memory_id)
    return {"deleted": hit.id}


@router.delete("", summary="Forget everything remembered about the caller")
async def delete_all_memories(services: ServicesDep, user: UserDep) -> dict[str, Any]:
    async with _memory_errors(services.settings.memory_rest_timeout_s):
        n = await services.memory.delete_all(user)
    return {"deleted": n}
