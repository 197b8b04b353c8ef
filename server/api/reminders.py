"""Reminders: the user (or their desktop app) asks to be reminded, once or every day / week at
a time in their time zone; connected sessions get a `reminder` event when it falls due
(server/hub/reminders.py). The rules are shared with the agent's schedule tools
(server/reminders.py)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query
from pydantic import AwareDatetime, BaseModel, Field, model_validator

from server import reminders as rules
from server.api.deps import ServicesDep, UserDep
from server.reminders import (
    MAX_IN_SECONDS,
    ReminderRefused,
    Weekday,
    due_time,
    make_repeat,
    reminder_json,
)

router = APIRouter(prefix="/v1/reminders", tags=["reminders"])


class RepeatRule(BaseModel):
    every: Literal["daily", "weekly"]
    at: Annotated[str, Field(min_length=5, max_length=5, description="Time of day, HH:MM")]
    weekday: Weekday | None = Field(default=None, description="For weekly: monday ... sunday")
    time_zone: Annotated[str, Field(max_length=64)] | None = Field(
        default=None, description="IANA name; default: the user's saved timezone, else UTC"
    )


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
    repeat: RepeatRule | None = Field(
        default=None, description="Recurring (instead of due_at / in_seconds)"
    )

    @model_validator(mode="after")
    def _one_time(self) -> ReminderCreate:
        given = [x is not None for x in (self.due_at, self.in_seconds, self.repeat)]
        if sum(given) != 1:
            raise ValueError("give exactly one of due_at or in_seconds (once) or repeat")
        return self


@router.post("", status_code=201, summary="Ask to be reminded of something")
async def create_reminder(
    body: ReminderCreate, services: ServicesDep, user: UserDep
) -> dict[str, Any]:
    store = services.store
    try:
        due, repeat = None, None
        if body.repeat is not None:
            r = body.repeat
            repeat = await make_repeat(store, user, r.every, r.at, r.weekday, r.time_zone)
        else:
            due = due_time(body.due_at, body.in_seconds)
        rec = await rules.create_reminder(
            store, services.reminder_watchers, services.settings, user, body.text, due, repeat
        )
    except ReminderRefused as e:
        raise HTTPException(e.status, e.message) from None
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
        raise HTTPException(404, "No such reminder for this user.")
    return reminder_json(rec)


@router.delete("/{reminder_id}", summary="Cancel a pending reminder")
async def cancel_reminder(reminder_id: str, services: ServicesDep, user: UserDep) -> dict[str, Any]:
    try:
        rec = await rules.cancel_reminder(
            services.store, services.reminder_watchers, user, reminder_id
        )
    except ReminderRefused as e:
        raise HTTPException(e.status, e.message) from None
    return reminder_json(rec)
