"""Reminders (something the companion tells the user at a time, maybe recurring): their
records and that part of the store contract."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, Literal

ReminderStatus = Literal["pending", "delivered", "cancelled", "failed"]


@dataclass(frozen=True)
class Repeat:
    """A recurring reminder's rule: every day, or every week on ``weekday`` (0 = Monday),
    at the wall-clock time ``at`` ("HH:MM") in the IANA ``time_zone``."""

    every: Literal["daily", "weekly"]
    at: str
    time_zone: str
    weekday: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> Repeat | None:
        if not d:
            return None
        return cls(d["every"], d["at"], d["time_zone"], d.get("weekday"))


@dataclass
class ReminderRecord:
    """Something the companion tells the user at ``due_at`` (the `reminder` event)."""

    id: str
    user_id: str
    text: str
    due_at: datetime
    created_at: datetime
    status: ReminderStatus = "pending"
    delivered_at: datetime | None = None  # or cancelled at, or given up at (failed)
    attempts: int = 0  # failed delivery attempts
    last_error: str | None = None  # why the last attempt failed
    not_before: datetime | None = None  # claimed by a session, or backing off, until then
    repeat: Repeat | None = None  # recurring: due_at is the next occurrence
    occurrences: int = 0  # occurrences delivered (recurring reminders)


def check_close_status(status: str) -> str:
    """A reminder can only be closed as delivered or cancelled (never back to pending)."""
    if status not in ("delivered", "cancelled"):
        raise ValueError(f"invalid reminder close status: {status!r}")
    return status


class ReminderStore(ABC):
    @abstractmethod
    async def add_reminder(
        self, user_id: str, text: str, due_at: datetime, repeat: Repeat | None = None
    ) -> ReminderRecord:
        """A new pending reminder (recurring with ``repeat``: first due at ``due_at``)."""

    @abstractmethod
    async def get_reminder(self, user_id: str, reminder_id: str) -> ReminderRecord | None: ...

    @abstractmethod
    async def list_reminders(
        self, user_id: str, status: ReminderStatus | None = None, limit: int = 100
    ) -> list[ReminderRecord]:
        """Earliest due first (ties: oldest created first)."""

    @abstractmethod
    async def count_reminders(self, user_id: str, status: ReminderStatus) -> int: ...

    @abstractmethod
    async def close_reminder(
        self, user_id: str, reminder_id: str, status: Literal["delivered", "cancelled"]
    ) -> bool:
        """Move a pending reminder to ``status`` (setting delivered_at to now) in one atomic
        conditional update. False when it is not pending or not this user's: of two
        sessions racing to deliver it, exactly one wins."""

    @abstractmethod
    async def claim_reminder(self, user_id: str, reminder_id: str, until: datetime) -> bool:
        """Claim a pending reminder for delivery until ``until`` (one atomic conditional
        update): False when it is not pending, or claimed or backing off (``not_before`` in
        the future). Of two sessions racing, exactly one wins."""

    @abstractmethod
    async def fail_reminder_attempt(
        self, user_id: str, reminder_id: str, reason: str, retry_at: datetime | None
    ) -> bool:
        """Record a failed delivery attempt of a pending reminder: attempts + 1 and the
        reason; it is retried at ``retry_at``, or, when that is None, marked ``failed``."""

    @abstractmethod
    async def advance_reminder(
        self,
        user_id: str,
        reminder_id: str,
        due_at: datetime,
        next_due: datetime,
        error: str | None = None,
    ) -> bool:
        """A recurring reminder's occurrence at ``due_at`` is over: delivered (``error`` None:
        occurrences + 1, delivered_at now) or given up (``error`` kept as last_error). It moves
        to ``next_due``, still pending, unclaimed, attempts 0, in one atomic conditional
        update: False when it is not pending, not this user's or no longer at ``due_at``, so
        of two replicas finishing the same occurrence exactly one advances it."""
