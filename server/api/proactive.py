"""POST /v1/proactive/trigger: another app asks the persona to speak first (authenticated
like every route; it reaches the caller's own newest live session)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, ConfigDict, Field

from server.api.deps import ServicesDep, UserDep
from server.services import Services

router = APIRouter(prefix="/v1/proactive", tags=["proactive"])


class TriggerBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: Annotated[str, Field(min_length=1, max_length=500)]
    # the whole trigger prompt instead of the persona's webhook prompt with the reason in it
    prompt: Annotated[str, Field(min_length=1, max_length=2000)] | None = None


async def _served_elsewhere(services: Services, user: str) -> bool:
    """Whether another replica serves one of the user's active sessions (a live session
    there, not a REST chat thread, which nobody claims)."""
    active = [s.id for s in await services.store.list_sessions(user) if s.status == "active"]
    return bool(await services.store.sessions_owned_elsewhere(active, services.instance_id))


@router.post("/trigger", summary="Ask the persona to speak first in the caller's live session")
async def trigger(body: TriggerBody, services: ServicesDep, user: UserDep) -> dict[str, Any]:
    """200 {"status": "started"} once the fire is stored and the turn started; 409 with the
    reason when the user's choices refuse it now (mode, quiet hours, a turn or playback
    active); 404 when the user has no live session; 421 when it is on another replica."""
    outcome = await services.initiative.webhook(user, body.reason, body.prompt)
    if outcome is None and await _served_elsewhere(services, user):
        raise HTTPException(
            421,
            "The user's live session is on another server replica, which this request did "
            f"not reach (it reached {services.instance_id!r}): send the trigger to the replica "
            "that holds the session (see POST /v1/proactive/trigger in docs/api.md).",
        )
    if outcome is None:
        raise HTTPException(404, "No live session for this user: nobody would hear it.")
    if outcome != "started":
        raise HTTPException(409, f"Not now: {outcome}.")
    return {"status": "started"}
