"""GET /v1/approvals: the caller's approvals of consequential tool calls, with decisions."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Path, Query

from server.agent.approvals import approval_json
from server.api.deps import Offset, ServicesDep, UserDep

router = APIRouter(prefix="/v1/approvals", tags=["approvals"])

Status = Literal["pending", "approved", "edited", "rejected", "expired"]


@router.get("", summary="The caller's approvals, newest first")
async def list_approvals(
    services: ServicesDep,
    user: UserDep,
    status: Status | None = None,
    session_id: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Offset = 0,
) -> dict[str, Any]:
    recs = await services.store.list_approvals(user, status, session_id, limit, offset)
    return {"approvals": [approval_json(r) for r in recs]}


@router.get("/{call_id}", summary="One of the caller's approvals")
async def get_approval(
    services: ServicesDep, user: UserDep, call_id: Annotated[str, Path(max_length=128)]
) -> dict[str, Any]:
    rec = await services.store.get_approval(user, call_id)
    if rec is None:
        raise HTTPException(404, "No such approval.")
    return approval_json(rec)
