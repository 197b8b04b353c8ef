from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query

from server.api.deps import ServicesDep, UserDep

router = APIRouter(prefix="/v1/sessions", tags=["sessions"])
Limit = Annotated[int, Query(ge=1, le=500)]
# Bounded: SQLite takes 64-bit integers only, and an unbounded offset answered 500.
Offset = Annotated[int, Query(ge=0, le=1_000_000_000)]


@router.get("", summary="The caller's sessions, newest first")
async def list_sessions(
    services: ServicesDep, user: UserDep, limit: Limit = 50, offset: Offset = 0
) -> dict[str, Any]:
    rows = await services.store.list_sessions(user, limit=limit, offset=offset)
    return {"sessions": [asdict(r) for r in rows], "limit": limit, "offset": offset}


@router.get("/{session_id}", summary="One of the caller's sessions")
async def get_session(session_id: str, services: ServicesDep, user: UserDep) -> dict[str, Any]:
    rec = await services.store.get_session(user, session_id)
    if rec is None:
        raise HTTPException(404, "No such session for this user.")
    return asdict(rec)


@router.get("/{session_id}/messages", summary="A session's messages, oldest first")
async def list_messages(
    session_id: str, services: ServicesDep, user: UserDep, limit: Limit = 100, offset: Offset = 0
) -> dict[str, Any]:
    if await services.store.get_session(user, session_id) is None:
        raise HTTPException(404, "No such session for this user.")
    rows = await services.store.list_messages(user, session_id, limit=limit, offset=offset)
    return {"messages": [asdict(m) for m in rows], "limit": limit, "offset": offset}
