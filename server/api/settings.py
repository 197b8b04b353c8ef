"""GET/PUT /v1/settings: the user's defaults for new sessions (persona, voice, system prompt
and whether it adds to or replaces the persona's, sampling, output audio, turn detection).
A session's own session.update changes that session only."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException

from server.api.deps import ServicesDep, UserDep
from server.hub.protocol import SessionConfig

router = APIRouter(prefix="/v1/settings", tags=["settings"])


@router.get("", summary="The caller's defaults for new sessions")
async def get_settings(services: ServicesDep, user: UserDep) -> dict[str, Any]:
    return {"settings": await services.store.get_user_settings(user)}


@router.put("", summary="Replace the caller's defaults for new sessions")
async def put_settings(body: SessionConfig, services: ServicesDep, user: UserDep) -> dict[str, Any]:
    """Same fields and limits as session.update's ``session``; null or absent means "the
    server's default". Answered once stored."""
    chosen = body.model_dump(exclude_none=True)
    if body.turn_detection is not None:  # an omitted type is this server's default
        chosen["turn_detection"] = body.turn_detection.with_type(services.settings.turn_detection)
    if "persona" in chosen and services.personas.get(chosen["persona"]) is None:
        raise HTTPException(404, f"No persona {chosen['persona']!r}.")
    await services.store.put_user_settings(user, chosen)
    return {"settings": chosen}
