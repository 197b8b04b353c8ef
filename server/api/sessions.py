from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query

from server.api.deps import Offset, ServicesDep, UserDep

router = APIRouter(prefix="/v1/sessions", tags=["sessions"])
Limit = Annotated[int, Query(ge=1, le=500)]


TITLE_CHARS = 60
Query_ = Annotated[str | None, Query(min_length=1, max_length=200, description="search text")]


def _title(first_words: str | None) -> str | None:
    if not first_words:
        return None
    text = " ".join(first_words.split())
    return text if len(text) <= TITLE_CHARS else text[: TITLE_CHARS - 1].rstrip() + "…"


@router.get("", summary="The caller's sessions, newest first (optionally those matching q)")
async def list_sessions(
    services: ServicesDep,
    user: UserDep,
    limit: Limit = 50,
    offset: Offset = 0,
    q: Query_ = None,
) -> dict[str, Any]:
    """Each session carries what a person recognises it by: the persona's name, its first
    words (``title``), how many messages it has, and its report's URL."""
    store = services.store
    if q is not None:
        rows = (await store.search_sessions(user, q, limit=limit + offset))[offset:]
    else:
        rows = await store.list_sessions(user, limit=limit, offset=offset)
    previews = await store.session_previews(user, [r.id for r in rows])
    out = []
    for r in rows:
        first, count = previews.get(r.id, (None, 0))
        persona = services.personas.get(r.persona_id)
        out.append(
            asdict(r)
            | {
                "persona_name": persona.name if persona else r.persona_id,
                "title": _title(first),
                "message_count": count,
                "report_url": f"/v1/sessions/{r.id}/report",
            }
        )
    return {"sessions": out, "limit": limit, "offset": offset, "q": q}


@router.get("/{session_id}", summary="One of the caller's sessions")
async def get_session(session_id: str, services: ServicesDep, user: UserDep) -> dict[str, Any]:
    rec = await services.store.get_session(user, session_id)
    if rec is None:
        raise HTTPException(404, "No such session for this user.")
    return asdict(rec)


@router.delete(
    "/{session_id}",
    summary="Delete one of the caller's sessions with its messages, samples and report",
    responses={404: {"description": "No such session"}, 409: {"description": "Still open"}},
)
async def delete_session(session_id: str, services: ServicesDep, user: UserDep) -> dict[str, Any]:
    rec = await services.store.get_session(user, session_id)
    if rec is None:
        raise HTTPException(404, "No such session for this user.")
    if rec.status == "active":
        raise HTTPException(409, "The session is open in a client; end or leave it first.")
    if not await services.store.delete_session(user, session_id):
        raise HTTPException(404, "No such session for this user.")
    return {"deleted": True, "session_id": session_id}


@router.get("/{session_id}/messages", summary="A session's messages, oldest first")
async def list_messages(
    session_id: str, services: ServicesDep, user: UserDep, limit: Limit = 100, offset: Offset = 0
) -> dict[str, Any]:
    if await services.store.get_session(user, session_id) is None:
        raise HTTPException(404, "No such session for this user.")
    rows = await services.store.list_messages(user, session_id, limit=limit, offset=offset)
    return {"messages": [asdict(m) for m in rows], "limit": limit, "offset": offset}
