"""Schedule tools: the same reminders as /v1/reminders (server/reminders.py: same store,
limits, per-user isolation and delivery to the user's open sessions)."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from server.agent.tools.base import Tool, ToolEnv, ToolError, ToolOutcome
from server.reminders import MAX_IN_SECONDS, ReminderRefused, cancel_reminder, create_reminder
from server.store.base import utcnow

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

    @model_validator(mode="after")
    def _one_time(self) -> ScheduleCreate:
        if (self.in_minutes is None) == (self.trigger_at is None):
            raise ValueError("give exactly one of in_minutes or trigger_at")
        return self


class ScheduleList(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ScheduleCancel(BaseModel):
    model_config = ConfigDict(extra="forbid")
    schedule_id: Annotated[str, Field(min_length=1, max_length=100)]


def _clock(iso_utc: str) -> str:
    return iso_utc[11:16] + " UTC"


async def schedule_create(args: ScheduleCreate, env: ToolEnv) -> ToolOutcome:
    due = args.trigger_at or utcnow() + timedelta(minutes=args.in_minutes or 0)
    try:
        rec = await create_reminder(
            env.store, env.reminders, env.settings, env.user_id, args.message, due
        )
    except ReminderRefused as e:
        raise ToolError(e.message) from None
    due_at = rec.due_at.isoformat()
    return ToolOutcome(
        {"schedule_id": rec.id, "message": rec.text, "trigger_at": due_at},
        f"reminder set for {_clock(due_at)}: {rec.text}",
        {"schedule_id": rec.id, "due_at": due_at, "message": rec.text},
    )


async def schedule_list(_args: ScheduleList, env: ToolEnv) -> ToolOutcome:
    rows = await env.store.list_reminders(env.user_id, "pending", LIST_LIMIT)
    items = [
        {"schedule_id": r.id, "message": r.text, "trigger_at": r.due_at.isoformat()} for r in rows
    ]
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
        "Set a reminder the user will get at a time: give in_minutes OR trigger_at.",
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
