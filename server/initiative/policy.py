"""Whether the persona may speak first now: modes, quiet hours, cooldown, schedules.

Pure functions of the clock and the user's choices, so every rule is tested directly."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

Mode = Literal["off", "quiet", "normal", "chatty"]
Trigger = Literal["idle", "schedule", "webhook", "return", "focus", "error_screen", "negative"]
VISION_TRIGGERS = frozenset({"return", "focus", "error_screen", "negative"})
# quiet: only what the user asked for (schedules, other apps) and a greeting on return
ALLOWED: dict[Mode, frozenset[str]] = {
    "off": frozenset(),
    "quiet": frozenset({"schedule", "webhook", "return"}),
    "normal": frozenset({"idle", "schedule", "webhook", *VISION_TRIGGERS}),
    "chatty": frozenset({"idle", "schedule", "webhook", *VISION_TRIGGERS}),
}
PACE: dict[Mode, float] = {"off": 1.0, "quiet": 2.0, "normal": 1.0, "chatty": 0.5}
_HOURS = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-3]):([0-5]\d)$")


def parse_quiet_hours(spec: str | None) -> tuple[time, time] | None:
    """ "23:00-07:00" -> (23:00, 07:00); blank -> None; anything else is a ValueError."""
    if not spec:
        return None
    m = _HOURS.match(spec.strip())
    if not m:
        raise ValueError(f"quiet hours must look like 23:00-07:00, not {spec!r}")
    a, b = time(int(m[1]), int(m[2])), time(int(m[3]), int(m[4]))
    if a == b:
        raise ValueError("quiet hours must not start and end at the same minute")
    return a, b


def in_quiet_hours(now_local: datetime, spec: str | None) -> bool:
    hours = parse_quiet_hours(spec)
    if hours is None:
        return False
    start, end = hours
    t = now_local.time().replace(tzinfo=None)
    return start <= t < end if start < end else (t >= start or t < end)


def zone(name: str | None, fallback: str) -> ZoneInfo:
    for candidate in (name, fallback, "UTC"):
        if candidate:
            try:
                return ZoneInfo(candidate)
            except (ZoneInfoNotFoundError, ValueError):
                continue
    return ZoneInfo("UTC")


def check_zone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r} (use an IANA name like Asia/Seoul)") from None
    return name


@dataclass(frozen=True)
class Choices:
    """The user's proactive settings for one session."""

    mode: Mode
    quiet_hours: str | None
    tz: ZoneInfo
    vision: bool  # camera/screen triggers allowed


def refusal(
    trigger: str,
    choices: Choices,
    now: datetime,
    *,
    busy: bool,
    since_last_s: float | None,
    cooldown_s: float,
) -> str | None:
    """Why the persona may not speak first now (None: it may). The webhook, an explicit
    request from another app, skips the cooldown but nothing else."""
    if trigger not in ALLOWED[choices.mode]:
        return f"mode {choices.mode}"
    if trigger in VISION_TRIGGERS and not choices.vision:
        return "camera/screen triggers are off"
    if busy:
        return "a turn or playback is active"
    if in_quiet_hours(now.astimezone(choices.tz), choices.quiet_hours):
        return "quiet hours"
    if trigger != "webhook" and since_last_s is not None:
        if since_last_s < cooldown_s * PACE[choices.mode]:
            return "cooldown"
    return None


def idle_after_s(mode: Mode, base_s: float) -> float:
    return base_s * PACE[mode]


def cron_fires(expr: str, after: datetime, until: datetime, tz: ZoneInfo) -> list[datetime]:
    """Fire times of ``expr`` (5 fields, or 6 with seconds last) in (after, until], evaluated
    in the user's zone (a morning greeting at 08:00 is 08:00 where the user lives)."""
    it = croniter(expr, after.astimezone(tz))
    out: list[datetime] = []
    while len(out) < 100:
        t: datetime = it.get_next(datetime)
        if t > until:
            break
        out.append(t)
    return out


def check_cron(expr: str) -> str:
    if not croniter.is_valid(expr):
        raise ValueError(f"invalid cron expression {expr!r}")
    return expr


def fire_key(trigger: str, *parts: object) -> str:
    return ":".join([trigger, *(str(p) for p in parts)])


ONE_SECOND = timedelta(seconds=1)
