"""The store contract: one interface, two adapters (SQLite embedded, MongoDB).

Every method takes the authenticated ``user_id`` and filters by it, so one user can
never read or change another user's data through the store.
"""

from __future__ import annotations

import uuid
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from langgraph.checkpoint.base import BaseCheckpointSaver

SessionStatus = Literal["active", "paused", "ended"]
Role = Literal["user", "assistant", "system"]
ReminderStatus = Literal["pending", "delivered", "cancelled"]


def new_id() -> str:
    return uuid.uuid4().hex


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class SessionRecord:
    id: str
    user_id: str
    persona_id: str
    thread_id: str
    status: SessionStatus
    settings: dict[str, Any]
    started_at: datetime
    ended_at: datetime | None = None


@dataclass
class MessageRecord:
    id: str
    session_id: str
    user_id: str
    persona_id: str
    role: Role
    content: str
    created_at: datetime
    timings: dict[str, Any] | None = None
    interrupted: bool = False


@dataclass
class Sample:
    """One downsampled analysis point of a session timeline (face, voice, ...)."""

    kind: str
    t_ms: int
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class ReminderRecord:
    """Something the companion tells the user at ``due_at`` (the `reminder` event)."""

    id: str
    user_id: str
    text: str
    due_at: datetime
    created_at: datetime
    status: ReminderStatus = "pending"
    delivered_at: datetime | None = None  # or cancelled at


class Store(ABC):
    """Async storage of users, sessions, messages, analysis samples, usage and reports."""

    @abstractmethod
    async def open(self) -> None:
        """Connect and create tables/indexes. Idempotent."""

    @abstractmethod
    async def close(self) -> None: ...

    @abstractmethod
    async def ping(self) -> bool:
        """True when the database answers."""

    @abstractmethod
    def checkpointer(self) -> BaseCheckpointSaver:
        """LangGraph checkpointer living in the same database (valid after open())."""

    @abstractmethod
    async def ensure_user(self, user_id: str) -> None: ...

    @abstractmethod
    async def create_session(
        self, user_id: str, persona_id: str, settings: dict[str, Any] | None = None
    ) -> SessionRecord:
        """New session; its thread_id equals its id."""

    @abstractmethod
    async def get_session(self, user_id: str, session_id: str) -> SessionRecord | None: ...

    @abstractmethod
    async def list_sessions(
        self, user_id: str, limit: int = 50, offset: int = 0
    ) -> list[SessionRecord]:
        """Newest first."""

    @abstractmethod
    async def update_session(
        self,
        user_id: str,
        session_id: str,
        *,
        status: SessionStatus | None = None,
        settings: dict[str, Any] | None = None,
        ended_at: datetime | None = None,
    ) -> bool:
        """False when the session does not exist for this user."""

    @abstractmethod
    async def add_message(
        self,
        user_id: str,
        session_id: str,
        persona_id: str,
        role: Role,
        content: str,
        *,
        timings: dict[str, Any] | None = None,
        interrupted: bool = False,
    ) -> MessageRecord: ...

    @abstractmethod
    async def list_messages(
        self, user_id: str, session_id: str, limit: int = 100, offset: int = 0
    ) -> list[MessageRecord]:
        """Oldest first."""

    @abstractmethod
    async def count_messages(
        self, user_id: str, persona_id: str | None = None, role: Role | None = None
    ) -> int: ...

    @abstractmethod
    async def add_samples(self, user_id: str, session_id: str, samples: list[Sample]) -> None: ...

    @abstractmethod
    async def list_samples(
        self, user_id: str, session_id: str, kind: str | None = None, limit: int = 10_000
    ) -> list[Sample]:
        """Ordered by t_ms."""

    @abstractmethod
    async def incr_usage(self, user_id: str, counters: dict[str, int]) -> None: ...

    @abstractmethod
    async def get_usage(self, user_id: str) -> dict[str, int]: ...

    @abstractmethod
    async def put_report(self, user_id: str, session_id: str, report: dict[str, Any]) -> None: ...

    @abstractmethod
    async def get_report(self, user_id: str, session_id: str) -> dict[str, Any] | None: ...

    @abstractmethod
    async def add_reminder(self, user_id: str, text: str, due_at: datetime) -> ReminderRecord:
        """A new pending reminder."""

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
