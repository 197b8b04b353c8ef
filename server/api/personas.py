from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException

from server.api.deps import ServicesDep

router = APIRouter(prefix="/v1/personas", tags=["personas"])


@router.get("", summary="All valid personas")
async def list_personas(services: ServicesDep) -> dict[str, Any]:
    """`default` is DEFAULT_PERSONA (what a new session gets when neither the socket nor the
    user's saved settings name one), so the studio can preselect it."""
    default = services.settings.default_persona
    return {
        "personas": [p.summary() for p in services.personas.list()],
        "default": default if services.personas.get(default) is not None else None,
    }


@router.get("/{persona_id}", summary="One persona, in full")
async def get_persona(persona_id: str, services: ServicesDep) -> dict[str, Any]:
    persona = services.personas.get(persona_id)
    if persona is None:
        raise HTTPException(404, f"No persona {persona_id!r}.")
    return persona.raw
