"""Schedule tools: the same reminders as /v1/reminders (server/reminders.py: same store,
limits, per-user isolation and delivery to the user's open sessions)."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from server.agent.tools.base import Tool, ToolEnv, ToolError, ToolOutcome
from server.reminders import (
    MAX_IN_SECONDS,
    ReminderRefused,
    Weekday,
    cancel_reminder,
    create_reminder,
    make_repeat,
    repeat_json,
)
from server.store.base import ReminderRecord, utcnow

LIST_LIMIT = 50


class ScheduleCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    message: Annotated[str, Field(min_length=1, max_length=2000, description="What to say")]
    in_minutes: (
        Annotated[float, Field(gt=0, le=MAX_IN_SECONDS / 60, allow_inf_nan=False)] | None
    ) = Field(default=None, description="Remind this many minutes from now")
    trigger_at: AwareDatetime | None = Field(
        default=None, description="Or: when, ISO 8601 with a time zone"
    )
    repeat: Literal["daily", "weekly"] | None = Field(
        default=None, description="Or: every day / every week at `at` (then no in_minutes)"
    )
    at: Annotated[str, Field(max_length=5)] | None = Field(
        default=None, description="With repeat: time of day HH:MM in the user's time zone"
    )
    weekday: Weekday | None = Field(default=None, description="With weekly: monday ... sunday")
    time_zone: Annotated[str, Field(max_length=64)] | None = Field(
        default=None, description="IANA time zone; default: the user's own"
    )

    @model_validator(mode="after")
    def _one_time(self) -> ScheduleCreate:
        given = [x is not None for x in (self.in_minutes, self.trigger_at, self.repeat)]
        if sum(given) != 1:
            raise ValueError("give exactly one of in_minutes, trigger_at or repeat")
        if (self.repeat is None) != (self.at is None):
            raise ValueError("give at (HH:MM) with repeat, and only with repeat")
        return self


class ScheduleList(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ScheduleCancel(BaseModel):
    model_config = ConfigDict(extra="forbid")
    schedule_id: Annotated[str, Field(min_length=1, max_length=100)]


def _clock(iso_utc: str) -> str:
    return iso_utc[11:16] + " UTC"


def _every(rep: dict[str, Any]) -> str:
    day = f" on {rep['weekday']}s" if rep["weekday"] else ""
    return f"every {'week' if rep['every'] == 'weekly' else 'day'}{day} at {rep['at']}"


async def schedule_create(args: ScheduleCreate, env: ToolEnv) -> ToolOutcome:
    due, repeat = None, None
    try:
        if args.repeat is not None:
            repeat = await make_repeat(
                env.store, env.user_id, args.repeat, args.at or "", args.weekday, args.time_zone
            )
        else:
            due = args.trigger_at or utcnow() + timedelta(minutes=args.in_minutes or 0)
        rec = await create_reminder(
            env.store, env.reminders, env.settings, env.user_id, args.message, due, repeat
        )
    except ReminderRefused as e:
        raise ToolError(e.message) from None
    due_at = rec.due_at.isoformat()
    rep = repeat_json(rec.repeat)
    said = f"reminder set for {_clock(due_at)}"
    data = {"schedule_id": rec.id, "message": rec.text, "trigger_at": due_at}
    if rep is not None:
        said = f"reminder set {_every(rep)} ({rep['time_zone']}), first {_clock(due_at)}"
        data["repeat"] = rep
    return ToolOutcome(
        data,
        f"{said}: {rec.text}",
        {"schedule_id": rec.id, "due_at": due_at, "message": rec.text, "repeat": rep},
    )


def _listed(r: ReminderRecord) -> dict[str, Any]:
    item = {"schedule_id": r.id, "message": r.text, "trigger_at": r.due_at.isoformat()}
    if r.repeat is not None:
        item["repeat"] = repeat_json(r.repeat)
    return item


async def schedule_list(_args: ScheduleList, env: ToolEnv) -> ToolOutcome:
    rows = await env.store.list_reminders(env.user_id, "pending", LIST_LIMIT)
    items = [_listed(r) for r in rows]
    return ToolOutcome(
        {"schedules": items}, f"{len(items)} pending reminders", {"count": len(items)}
    )


async def schedule_cancel(args: ScheduleCancel, env: ToolEnv) -> ToolOutcome:
    try:
        rec = await cancel_reminder(env.store, env.reminders, env.user_id, args.schedule_id)
    except ReminderRefused as e:
        raise ToolError(e.message) from None
    return ToolOutcome(
        {"cancelled": rec.id},
        f"reminder cancelled: {rec.text}",
        {"schedule_id": rec.id},
    )


TOOLS = [
    Tool(
        "schedule_create",
        "Set a reminder the user will get at a time: give in_minutes OR trigger_at, or repeat "
        "(daily / weekly with weekday) with at (HH:MM, the user's time zone).",
        ScheduleCreate,
        schedule_create,
        consequential=False,
    ),
    Tool("schedule_list", "List the user's pending reminders.", ScheduleList, schedule_list),
    Tool(
        "schedule_cancel",
        "Cancel a pending reminder by its schedule_id (from schedule_list).",
        ScheduleCancel,
        schedule_cancel,
    ),
]
