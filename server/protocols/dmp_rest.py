"""The REST routes DesktopMatePlus clients call (docs/protocol-dmp.md): their session
list, history, delete and rename under /v1/stm, and POST /v1/tts/speak. They read and change
our ordinary sessions; `user_id` names the local user in local mode, and with auth
configured the bearer token decides (a different `user_id` is refused)."""

from __future__ import annotations

import base64
from collections import OrderedDict
from typing import Annotated, Any

from fastapi import APIRouter, Body, HTTPException, Query, Request
from pydantic import BaseModel, Field

from server.api.deps import ServicesDep
from server.api.voice import synthesize_request
from server.auth import AuthError, AuthUnavailable, authenticator, credentials
from server.protocols.common import claimed_user, local_mode, persona_for
from server.services import Services

router = APIRouter(tags=["DesktopMatePlus"])
Id = Annotated[str, Query(min_length=1, max_length=200)]

# Local mode only: who a session listed or chatted over DMP belongs to, for their PATCH,
# which names no user. Bounded; a miss falls back to the user "local".
_owners: OrderedDict[str, str] = OrderedDict()
_OWNERS_MAX = 10_000


def remember_owner(session_id: str, user_id: str) -> None:
    _owners[session_id] = user_id
    _owners.move_to_end(session_id)
    while len(_owners) > _OWNERS_MAX:
        _owners.popitem(last=False)


async def rest_user(request: Request, services: Services, user_id: str | None) -> str:
    token, _ = credentials(request)
    try:
        return (await claimed_user(authenticator(request), token, user_id)).user_id
    except AuthUnavailable as e:
        raise HTTPException(503, str(e)) from None
    except AuthError as e:
        if local_mode(services):
            raise HTTPException(422, str(e)) from None
        raise HTTPException(403 if token else 401, str(e)) from None


def _iso(t: Any) -> str | None:
    return t.isoformat() if t is not None else None


@router.get("/v1/stm/sessions", summary="DMP: the user's sessions with this agent's persona")
async def stm_sessions(
    request: Request, services: ServicesDep, user_id: Id, agent_id: Id
) -> dict[str, Any]:
    user = await rest_user(request, services, user_id)
    pid = persona_for(services, None, agent_id) or services.settings.default_persona
    store = services.store
    rows = [r for r in await store.list_sessions(user, limit=500) if r.persona_id == pid]
    counts = await store.session_previews(user, [r.id for r in rows])
    out = []
    for r in rows:
        _, count = counts.get(r.id, (None, 0))
        last = await store.list_messages(user, r.id, limit=1, offset=max(0, count - 1))
        updated = last[-1].created_at if last else (r.ended_at or r.started_at)
        if local_mode(services):
            remember_owner(r.id, user)
        out.append(
            {
                "session_id": r.id,
                "user_id": user,
                "agent_id": agent_id,
                "created_at": _iso(r.started_at),
                "updated_at": _iso(updated),
                "metadata": r.settings.get("metadata") or {},
            }
        )
    return {"sessions": out}


@router.get("/v1/stm/get-chat-history", summary="DMP: one session's messages, oldest first")
async def stm_history(
    request: Request,
    services: ServicesDep,
    session_id: Id,
    user_id: Id,
    agent_id: Id,
    limit: Annotated[int | None, Query(gt=0, le=10_000)] = None,
) -> dict[str, Any]:
    user = await rest_user(request, services, user_id)
    store = services.store
    if await store.get_session(user, session_id) is None:
        raise HTTPException(404, "Session not found")
    rows = await store.list_messages(user, session_id, limit=10_000)
    if limit is not None:
        rows = rows[-limit:]
    messages = [
        {"role": m.role, "content": m.content, "created_at": _iso(m.created_at)}
        for m in rows
        if m.role in ("user", "assistant")
    ]
    return {"session_id": session_id, "messages": messages}


@router.delete("/v1/stm/sessions/{session_id}", summary="DMP: delete one of the user's sessions")
async def stm_delete(
    session_id: str, request: Request, services: ServicesDep, user_id: Id, agent_id: Id
) -> dict[str, Any]:
    user = await rest_user(request, services, user_id)
    store = services.store
    rec = await store.get_session(user, session_id)
    if rec is None:
        raise HTTPException(404, "Session not found")
    if rec.status == "active":
        raise HTTPException(409, "The session is open in a client; leave it first.")
    if not await store.delete_session(user, session_id):
        raise HTTPException(404, "Session not found")
    return {"success": True, "message": "Session deleted successfully"}


@router.patch(
    "/v1/stm/sessions/{session_id}/metadata",
    summary="DMP: merge into a session's metadata ({metadata: {...}} or {name: ...})",
)
async def stm_metadata(
    session_id: str,
    request: Request,
    services: ServicesDep,
    body: Annotated[dict[str, Any], Body()],
    user_id: Annotated[str | None, Query(min_length=1, max_length=200)] = None,
) -> dict[str, Any]:
    named = user_id or body.get("user_id")
    if named is None and local_mode(services):
        named = _owners.get(session_id)
    user = await rest_user(request, services, named if isinstance(named, str) else None)
    if body.get("session_id") not in (None, session_id):
        raise HTTPException(400, "session_id in the body differs from the one in the path.")
    if "metadata" in body:
        changes = body["metadata"]
        if not isinstance(changes, dict):
            raise HTTPException(422, "metadata must be an object.")
    else:  # their client sends {name}
        changes = {k: v for k, v in body.items() if k not in ("session_id", "user_id")}
    if not changes:
        raise HTTPException(422, "Nothing to update: send {metadata: {...}} or {name: ...}.")
    if len(str(changes)) > 4096:
        raise HTTPException(413, "Session metadata is limited to 4096 characters.")
    store = services.store
    rec = await store.get_session(user, session_id)
    if rec is None:
        raise HTTPException(404, "Session not found")
    metadata = {**(rec.settings.get("metadata") or {}), **changes}
    await store.update_session(user, session_id, settings={**rec.settings, "metadata": metadata})
    return {"success": True, "message": "Session metadata updated successfully"}


class SpeakRequest(BaseModel):
    text: Annotated[str, Field(min_length=1)]
    reference_id: Annotated[str, Field(max_length=100)] | None = None


@router.post("/v1/tts/speak", summary="DMP: synthesize text as a base64 WAV")
async def tts_speak(body: SpeakRequest, request: Request, services: ServicesDep) -> dict[str, Any]:
    user = await rest_user(request, services, None)
    wav = await synthesize_request(services, body.text, body.reference_id, "wav", user)
    return {"audio_base64": base64.b64encode(wav).decode()}
