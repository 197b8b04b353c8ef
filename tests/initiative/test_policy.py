"""The proactive rules as functions of the clock: quiet hours across midnight, cron in the
user's zone, modes, cooldown pace, vision switch."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from server.initiative.policy import Choices, cron_fires, in_quiet_hours, parse_quiet_hours, refusal

SEOUL = ZoneInfo("Asia/Seoul")


def test_quiet_hours_wrap_midnight_and_refuse_nonsense() -> None:
    at = lambda h, m=0: datetime(2026, 12, 6, h, m, tzinfo=SEOUL)  # noqa: E731
    assert in_quiet_hours(at(23, 30), "23:00-07:00")
    assert in_quiet_hours(at(6, 59), "23:00-07:00")
    assert not in_quiet_hours(at(7, 0), "23:00-07:00")
    assert in_quiet_hours(at(13), "12:00-14:00") and not in_quiet_hours(at(14), "12:00-14:00")
    assert not in_quiet_hours(at(3), "")
    for bad in ("7-8", "24:00-01:00", "10:00-10:00", "10:00"):
        with pytest.raises(ValueError):
            parse_quiet_hours(bad)


def test_cron_is_evaluated_in_the_users_zone() -> None:
    # 08:00 in Seoul is 23:00 UTC the day before
    after = datetime(2026, 12, 6, 22, 0, tzinfo=UTC)
    fires = cron_fires("0 8 * * *", after, after + timedelta(hours=2), SEOUL)
    assert [f.astimezone(UTC) for f in fires] == [datetime(2026, 12, 6, 23, 0, tzinfo=UTC)]
    assert cron_fires("0 8 * * *", after, after + timedelta(minutes=59), SEOUL) == []


def test_modes_cooldown_vision_and_busy() -> None:
    now = datetime(2026, 12, 6, 3, 0, tzinfo=UTC)  # 12:00 in Seoul

    def why(trigger: str, mode: str = "normal", vision: bool = False, **kw: object) -> str | None:
        c = Choices(mode, kw.pop("quiet", None), SEOUL, vision)  # type: ignore[arg-type]
        args = {"busy": False, "since_last_s": None, "cooldown_s": 600.0} | kw
        return refusal(trigger, c, now, **args)  # type: ignore[arg-type]

    assert why("idle") is None
    assert why("idle", "off") == "mode off" and why("webhook", "off") == "mode off"
    assert why("idle", "quiet") == "mode quiet" and why("schedule", "quiet") is None
    assert why("return") == "camera/screen triggers are off"
    assert why("return", vision=True) is None
    assert why("idle", busy=True) == "a turn or playback is active"
    assert why("idle", quiet="11:00-13:00") == "quiet hours"
    assert why("idle", since_last_s=500.0) == "cooldown"
    assert why("idle", "chatty", since_last_s=500.0) is None  # chatty halves the cooldown
    assert why("idle", "quiet", since_last_s=900.0) == "mode quiet"
    assert why("schedule", "quiet", since_last_s=900.0) == "cooldown"  # quiet doubles it
    assert why("webhook", since_last_s=1.0) is None  # an app's explicit request
