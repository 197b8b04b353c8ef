"""Reminders: the user (or their desktop app) asks to be reminded; connected sessions get a
`reminder` event when it falls due (server/hub/reminders.py)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query
from pydantic import AwareDatetime, BaseModel, Field, model_validator

from server.api.deps import ServicesDep, UserDep
from server.hub.reminders import reminder_json
from server.store.base import utcnow

router = APIRouter(prefix="/v1/reminders", tags=["reminders"])
PAST_GRACE = timedelta(seconds=60)  # clocks differ a little: "now" from a client is fine
MAX_IN_SECONDS = 100 * 365 * 86400.0


class ReminderCreate(BaseModel):
    text: Annotated[str, Field(min_length=1, max_length=100_000)]
    due_at: AwareDatetime | None = Field(
        default=None, description="ISO 8601 with a time zone, e.g. 2026-11-21T09:00:00+09:00"
    )
    # Finite and bounded: 1e300 or Infinity overflowed timedelta (a 500); the settings'
    # REMINDER_MAX_DAYS check below is the real limit.
    in_seconds: Annotated[float, Field(ge=0, le=MAX_IN_SECONDS, allow_inf_nan=False)] | None = (
        Field(default=None, description="Due this many seconds from now (instead of due_at)")
    )

    @model_validator(mode="after")
    def _one_time(self) -> ReminderCreate:
        if (self.due_at is None) == (self.in_seconds is None):
            raise ValueError("give exactly one of due_at or in_seconds")
        return self


def _not_found() -> HTTPException:
    return HTTPException(404, "No such reminder for this user.")


@router.post("", status_code=201, summary="Ask to be reminded of something")
async def create_reminder(
    body: ReminderCreate, services: ServicesDep, user: UserDep
) -> dict[str, Any]:
    s = services.settings
    text = body.text.strip()
    if not text:
        raise HTTPException(422, "text must not be blank.")
    if len(text) > s.reminder_max_chars:
        raise HTTPException(
            413, f"text is limited to {s.reminder_max_chars} characters (REMINDER_MAX_CHARS)."
        )
    now = utcnow()
    due: datetime = (
        body.due_at if body.due_at is not None else now + timedelta(seconds=body.in_seconds or 0)
    )
    if due < now - PAST_GRACE:
        raise HTTPException(422, "due_at is in the past.")
    if due > now + timedelta(days=s.reminder_max_days):
        raise HTTPException(
            422, f"due_at is more than {s.reminder_max_days} days ahead (REMINDER_MAX_DAYS)."
        )
    store = services.store
    if await store.count_reminders(user, "pending") >= s.reminders_max_pending:
        raise HTTPException(
            409,
            f"You have {s.reminders_max_pending} pending reminders, the limit "
            "(REMINDERS_MAX_PENDING); cancel one first.",
        )
    await store.ensure_user(user)
    rec = await store.add_reminder(user, text, due)
    services.reminder_watchers.changed(user)
    return reminder_json(rec)


@router.get("", summary="The caller's reminders, earliest due first")
async def list_reminders(
    services: ServicesDep,
    user: UserDep,
    status: Literal["pending", "delivered", "cancelled", "failed"] | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> dict[str, Any]:
    rows = await services.store.list_reminders(user, status, limit)
    return {"reminders": [reminder_json(r) for r in rows]}


@router.get("/{reminder_id}", summary="One of the caller's reminders")
async def get_reminder(reminder_id: str, services: ServicesDep, user: UserDep) -> dict[str, Any]:
    rec = await services.store.get_reminder(user, reminder_id)
    if rec is None:
        raise _not_found()
    return reminder_json(rec)


@router.delete("/{reminder_id}", summary="Cancel a pending reminder")
async def cancel_reminder(reminder_id: str, services: ServicesDep, user: UserDep) -> dict[str, Any]:
    store = services.store
    if not await store.close_reminder(user, reminder_id, "cancelled"):
        rec = await store.get_reminder(user, reminder_id)
        if rec is None:
            raise _not_found()
        raise HTTPException(409, f"The reminder is already {rec.status}.")
    services.reminder_watchers.changed(user)
    rec = await store.get_reminder(user, reminder_id)
    assert rec is not None
    return reminder_json(rec)
