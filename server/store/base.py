"""The store contract: one interface, two adapters (SQLite embedded, MongoDB).

Every method takes the authenticated ``user_id`` and filters by it, so one user can
never read or change another user's data through the store.
"""

from __future__ import annotations

import asyncio
import uuid
from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from langgraph.checkpoint.base import BaseCheckpointSaver

# Each area's part of the contract lives in its own module; Store mixes them in. The
# area's records are re-exported here so callers import them from one place.
from server.store.history_base import HistoryStore
from server.store.initiative_base import TASK_APPROVAL_PREFIX as TASK_APPROVAL_PREFIX
from server.store.initiative_base import ApprovalRecord as ApprovalRecord
from server.store.initiative_base import ApprovalStatus as ApprovalStatus
from server.store.initiative_base import InitiativeStore
from server.store.initiative_base import ProactiveFireRecord as ProactiveFireRecord
from server.store.ownership_base import OwnershipStore
from server.store.reminders_base import ReminderRecord as ReminderRecord
from server.store.reminders_base import ReminderStatus as ReminderStatus
from server.store.reminders_base import ReminderStore
from server.store.reminders_base import Repeat as Repeat
from server.store.samples_base import Sample as Sample
from server.store.samples_base import SampleStore
from server.store.settings_base import SettingsStore
from server.store.tasks_base import CONSENT_ITEMS as CONSENT_ITEMS
from server.store.tasks_base import ActionStatus as ActionStatus
from server.store.tasks_base import ActionType as ActionType
from server.store.tasks_base import NewTaskAction as NewTaskAction
from server.store.tasks_base import TaskActionRecord as TaskActionRecord
from server.store.tasks_base import TaskRecord as TaskRecord
from server.store.tasks_base import TaskRouteRecord as TaskRouteRecord
from server.store.tasks_base import TaskStatus as TaskStatus
from server.store.tasks_base import TaskStore
from server.store.usage_base import UsageStore, check_counter_name
from server.store.vocabulary_base import VocabularyStore

# "interrupted": the server stopped (crashed) while the session was live; see
# recover_sessions and docs/protocol.md "Crash recovery". Resumable like "paused".
SessionStatus = Literal["active", "paused", "interrupted", "ended"]
Role = Literal["user", "assistant", "system"]


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


class Store(
    SampleStore,
    OwnershipStore,
    HistoryStore,
    UsageStore,
    SettingsStore,
    ReminderStore,
    InitiativeStore,
    TaskStore,
    VocabularyStore,
    ABC,
):
    """Async storage of users, sessions, messages, analysis samples, usage and reports.

    Here: the connection and the core user/session/message methods; the other areas'
    methods come from their own base modules (samples, ownership, history, usage, settings,
    reminders, initiative, tasks, vocabulary)."""

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
        message_id: str | None = None,
    ) -> MessageRecord:
        """``message_id``: an id the caller minted (the agent's history uses the same id,
        so the stored transcript and the model's history can be reconciled); else new."""

    async def add_reply(
        self,
        user_id: str,
        session_id: str,
        persona_id: str,
        content: str,
        *,
        usage: dict[str, int],
        timings: dict[str, Any] | None = None,
        interrupted: bool = False,
        message_id: str | None = None,
    ) -> MessageRecord | None:
        """The end of a turn, as response.done acknowledges it: the persona's reply (none
        for an empty one: a silent plan) and the turn's usage counters, both stored when
        this returns. Here the two writes run side by side; SQLite overrides it with one
        transaction (one commit instead of two)."""

        async def reply() -> MessageRecord | None:
            if not content:
                return None
            return await self.add_message(
                user_id,
                session_id,
                persona_id,
                "assistant",
                content,
                timings=timings,
                interrupted=interrupted,
                message_id=message_id,
            )

        for name in usage:  # a bad name writes neither
            check_counter_name(name)
        record, _ = await asyncio.gather(reply(), self.incr_usage(user_id, usage))
        return record

    @abstractmethod
    async def settle_message(self, user_id: str, message_id: str, content: str) -> bool:
        """Replace a message's content and mark it interrupted (a reply cut short, also
        one cut after it completed, settles to what the user heard); empty ``content``
        deletes it. False when it is not this user's."""

    # -- a message the client deleted (OpenAI Realtime conversation.item.delete) --------
    @abstractmethod
    async def delete_message(self, user_id: str, session_id: str, message_id: str) -> bool:
        """Remove one message of this user's session, whatever its role. False when the
        user has no such message in that session (another user's, another session's)."""

    @abstractmethod
    async def list_messages(
        self, user_id: str, session_id: str, limit: int = 100, offset: int = 0
    ) -> list[MessageRecord]:
        """Oldest first."""

    @abstractmethod
    async def count_messages(
        self, user_id: str, persona_id: str | None = None, role: Role | None = None
    ) -> int: ...
