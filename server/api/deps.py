"""Shared FastAPI dependencies."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Query, Request

from server.auth import current_user
from server.services import Services


def get_services(request: Request) -> Services:
    return request.app.state.services


ServicesDep = Annotated[Services, Depends(get_services)]
# Paging: bounded, since SQLite takes 64-bit integers only (an unbounded offset answered 500).
Offset = Annotated[int, Query(ge=0, le=1_000_000_000)]
UserDep = Annotated[str, Depends(current_user)]
