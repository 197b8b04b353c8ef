"""The store contract: one interface, two adapters (SQLite embedded, MongoDB).

Every method takes the authenticated ``user_id`` and filters by it, so one user can
never read or change another user's data through the store.
"""

from __future__ import annotations

import uuid
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from langgraph.checkpoint.base import BaseCheckpointSaver

# "interrupted": the server stopped (crashed) while the session was live; see
# recover_sessions and docs/protocol.md "Crash recovery". Resumable like "paused".
SessionStatus = Literal["active", "paused", "interrupted", "ended"]
Role = Literal["user", "assistant", "system"]
ReminderStatus = Literal["pending", "delivered", "cancelled", "failed"]
TaskStatus = Literal["running", "paused", "completed", "failed", "cancelled", "blocked_payment"]
ActionStatus = Literal["pending", "success", "failed"]
ActionType = Literal["click", "type", "scroll", "key", "wait"]
ApprovalStatus = Literal["pending", "approved", "edited", "rejected", "expired"]


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


# --- approvals and proactive fires (server/store/initiative.py): records ----------------


@dataclass
class ApprovalRecord:
    """A consequential tool call and the user's decision on it (issue 20)."""

    id: str  # the tool call's id
    user_id: str
    session_id: str
    name: str
    arguments: dict[str, Any]
    description: str
    status: ApprovalStatus
    created_at: datetime
    expires_at: datetime
    decided_at: datetime | None = None
    decided_arguments: dict[str, Any] | None = None  # an "edited" decision's arguments
    message: str | None = None  # a rejection's reason


@dataclass
class ProactiveFireRecord:
    user_id: str
    key: str
    trigger: str
    session_id: str | None
    fired_at: datetime


# --- screen tasks (server/tasks): records ------------------------------------------------


@dataclass
class TaskRecord:
    """One screen task the companion guides (seed 001's sessions table)."""

    id: str
    user_id: str
    app_name: str
    description: str
    status: TaskStatus
    current_step: int
    started_at: datetime
    updated_at: datetime
    ended_at: datetime | None = None
    details: dict[str, Any] = field(default_factory=dict)  # failure, metrics, home route


@dataclass
class TaskActionRecord:
    """One planned step of a task: previewed (pending), then success or failed."""

    id: str
    task_id: str
    user_id: str
    step_number: int
    action_type: str
    target_element: dict[str, Any]
    status: ActionStatus
    created_at: datetime
    updated_at: datetime
    screenshot_ref: str | None = None
    execution_time_ms: int | None = None
    details: dict[str, Any] = field(default_factory=dict)  # timings, attempt, verification


@dataclass
class NewTaskAction:
    """An action to add (pending) in the same write as the verdict on the one before it."""

    step_number: int
    action_type: str
    target_element: dict[str, Any]
    screenshot_ref: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class TaskRouteRecord:
    """The route a task planned (from its first analysis) and the one it actually took."""

    task_id: str
    user_id: str
    planned_route: list[Any]
    actual_route: list[Any]
    created_at: datetime
    updated_at: datetime


CONSENT_ITEMS = ("automation_scope", "legal_risk", "research_only", "data_storage")


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
        message_id: str | None = None,
    ) -> MessageRecord:
        """``message_id``: an id the caller minted (the agent's history uses the same id,
        so the stored transcript and the model's history can be reconciled); else new."""

    @abstractmethod
    async def settle_message(self, user_id: str, message_id: str, content: str) -> bool:
        """Replace a message's content (an interrupted reply settles to what the user
        heard); empty ``content`` deletes it. False when it is not this user's."""

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

    # -- the user's defaults for new sessions ----------------------------------------------

    @abstractmethod
    async def get_user_settings(self, user_id: str) -> dict[str, Any]:
        """The user's saved defaults ({} when none)."""

    @abstractmethod
    async def put_user_settings(self, user_id: str, settings: dict[str, Any]) -> None:
        """Replace the user's saved defaults."""

    # -- history (the studio's history viewer) -------------------------------------------

    @abstractmethod
    async def delete_session(self, user_id: str, session_id: str) -> bool:
        """Delete a session with its messages, samples, report and conversation checkpoint.
        False when it does not exist for this user."""

    @abstractmethod
    async def session_previews(
        self, user_id: str, session_ids: list[str]
    ) -> dict[str, tuple[str | None, int]]:
        """{session_id: (the first user message or None, message count)}."""

    @abstractmethod
    async def search_sessions(
        self, user_id: str, query: str, limit: int = 50
    ) -> list[SessionRecord]:
        """The user's sessions with a message containing ``query`` (case-insensitive),
        newest first."""

    # -- usage by day (the dashboard) ----------------------------------------------------
    # incr_usage also adds every counter to the bucket of the current UTC day.

    @abstractmethod
    async def get_usage_daily(
        self, user_id: str, first_day: str, last_day: str
    ) -> dict[str, dict[str, int]]:
        """{"YYYY-MM-DD": {counter: value}} for the UTC days in [first_day, last_day]."""

    @abstractmethod
    async def list_reply_timings(
        self, user_id: str, since: datetime, until: datetime, limit: int = 20_000
    ) -> list[tuple[datetime, str, dict[str, Any]]]:
        """(created_at, persona_id, timings) of the user's assistant messages with timings
        created in [since, until), oldest first."""

    @abstractmethod
    async def put_report(self, user_id: str, session_id: str, report: dict[str, Any]) -> None: ...

    @abstractmethod
    async def get_report(self, user_id: str, session_id: str) -> dict[str, Any] | None: ...

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

    # --- reminder delivery attempts (server/hub/reminders.py) ------------------------------

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

    # --- recurring reminders (server/reminders.py, server/hub/reminders.py) ----------------

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

    # --- approvals and proactive fires (server/store/initiative.py) ------------------------

    @abstractmethod
    async def add_approval(
        self,
        user_id: str,
        session_id: str,
        approval_id: str,
        name: str,
        arguments: dict[str, Any],
        description: str,
        expires_at: datetime,
    ) -> ApprovalRecord:
        """Store a pending approval (its id is the tool call's id)."""

    @abstractmethod
    async def get_approval(self, user_id: str, approval_id: str) -> ApprovalRecord | None: ...

    @abstractmethod
    async def decide_approval(
        self,
        user_id: str,
        approval_id: str,
        status: ApprovalStatus,
        arguments: dict[str, Any] | None = None,
        message: str | None = None,
    ) -> ApprovalRecord | None:
        """Settle a *pending* approval; None when it is not pending (or not the user's), so
        of two racing answers exactly one wins."""

    @abstractmethod
    async def list_approvals(
        self,
        user_id: str,
        status: ApprovalStatus | None = None,
        session_id: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> list[ApprovalRecord]:
        """Newest first."""

    @abstractmethod
    async def claim_proactive_fire(
        self, user_id: str, key: str, trigger: str, session_id: str | None = None
    ) -> bool:
        """Insert-or-ignore on (user, key): True for the one caller that may speak."""

    @abstractmethod
    async def list_proactive_fires(
        self, user_id: str, limit: int = 50
    ) -> list[ProactiveFireRecord]: ...

    # --- screen tasks (server/store/tasks_sqlite.py, tasks_mongo.py) -----------------------

    @abstractmethod
    async def create_task(self, user_id: str, app_name: str, description: str) -> TaskRecord:
        """A new running task at step 0, with an empty route."""

    @abstractmethod
    async def get_task(self, user_id: str, task_id: str) -> TaskRecord | None: ...

    @abstractmethod
    async def list_tasks(self, user_id: str, limit: int = 50, offset: int = 0) -> list[TaskRecord]:
        """Newest first."""

    @abstractmethod
    async def update_task(
        self,
        user_id: str,
        task_id: str,
        *,
        status: TaskStatus | None = None,
        current_step: int | None = None,
        details: dict[str, Any] | None = None,
        ended_at: datetime | None = None,
        only_if_status: tuple[TaskStatus, ...] | None = None,
    ) -> bool:
        """Change fields (details replaced) in one atomic update, only while the status is one
        of ``only_if_status`` when given. False when nothing matched."""

    @abstractmethod
    async def delete_task(self, user_id: str, task_id: str) -> bool:
        """Delete a task with its actions and route. False when it is not this user's."""

    @abstractmethod
    async def add_task_action(
        self,
        user_id: str,
        task_id: str,
        step_number: int,
        action_type: str,
        target_element: dict[str, Any],
        *,
        screenshot_ref: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> TaskActionRecord:
        """A new pending action."""

    @abstractmethod
    async def get_task_action(
        self, user_id: str, task_id: str, action_id: str
    ) -> TaskActionRecord | None: ...

    @abstractmethod
    async def list_task_actions(self, user_id: str, task_id: str) -> list[TaskActionRecord]:
        """In creation order."""

    @abstractmethod
    async def update_task_action(
        self,
        user_id: str,
        task_id: str,
        action_id: str,
        *,
        status: ActionStatus | None = None,
        execution_time_ms: int | None = None,
        details: dict[str, Any] | None = None,
        only_if_status: tuple[ActionStatus, ...] | None = None,
    ) -> bool:
        """Like update_task: atomic, conditional on the current status when asked."""

    @abstractmethod
    async def settle_task_action(
        self,
        user_id: str,
        task_id: str,
        action_id: str,
        *,
        status: ActionStatus,
        execution_time_ms: int | None,
        details: dict[str, Any],
        append_actual: dict[str, Any] | None = None,
        current_step: int | None = None,
        then_add: NewTaskAction | None = None,
    ) -> tuple[bool, TaskActionRecord | None]:
        """The verdict on a pending action, with (when it succeeded) its route entry, the
        task's new step and the next pending action (``then_add``), in one write (one
        transaction on SQLite: one commit per step). Returns (settled, the added action);
        (False, None), and nothing written, when the action is no longer pending."""

    @abstractmethod
    async def get_task_route(self, user_id: str, task_id: str) -> TaskRouteRecord | None: ...

    @abstractmethod
    async def update_task_route(
        self,
        user_id: str,
        task_id: str,
        *,
        planned_route: list[Any] | None = None,
        append_actual: dict[str, Any] | None = None,
    ) -> bool:
        """Replace the planned route and/or append one step to the actual route."""

    @abstractmethod
    async def get_consent(self, user_id: str) -> dict[str, datetime]:
        """The consent items (CONSENT_ITEMS) this user agreed to, each with its time."""

    @abstractmethod
    async def set_consent(self, user_id: str, items: dict[str, bool]) -> dict[str, datetime]:
        """Agree (True: keeps the first time agreed) or withdraw (False) items; returns all."""

    # -- live sessions: ownership and crash recovery ---------------------------------
    # Unlike everything above, these are server-wide maintenance operations (not scoped by
    # a user): they never return user data, only which sessions changed state.

    @abstractmethod
    async def claim_session(self, user_id: str, session_id: str, owner: str) -> bool:
        """The process ``owner`` (its INSTANCE_ID) serves this session now: status active,
        owner and heartbeat recorded. False when it is not this user's session."""

    @abstractmethod
    async def heartbeat_sessions(self, owner: str) -> int:
        """Refresh the heartbeat of every active session ``owner`` serves; how many."""

    @abstractmethod
    async def sessions_owned_elsewhere(self, session_ids: list[str], owner: str) -> list[str]:
        """Of ``session_ids`` (the sessions this process serves), those another process has
        claimed since: they were resumed there (server/hub/takeover.py)."""

    @abstractmethod
    async def recover_sessions(self, stale_before: datetime, owner: str | None = None) -> list[str]:
        """Mark ``interrupted`` the active sessions whose serving process is gone: those
        ``owner`` served (a restarted process recovering its own), and those of any owner
        whose heartbeat is older than ``stale_before`` (a replica that never came back).
        Sessions never claimed by a socket (REST chat threads) are left alone. Returns the
        ids of the sessions it changed."""

    # -- controlled vocabulary (memory categories; one list for the whole server) ----------
    # The table/collection `controlled_vocabulary` is created by open(). Terms are stored
    # as given: server/agent/memory/vocabulary.py normalises them first.

    @abstractmethod
    async def vocabulary_terms(self) -> list[str]:
        """Every term, sorted."""

    @abstractmethod
    async def add_vocabulary_terms(self, terms: list[str]) -> list[str]:
        """Insert the terms not stored yet (insert-or-ignore / upsert, safe under races);
        return those this call inserted."""
