"""Screen tasks (server/tasks): their records and that part of the store contract
(adapters: server/store/tasks_sqlite.py with task_actions_sqlite.py, tasks_mongo.py)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

TaskStatus = Literal["running", "paused", "completed", "failed", "cancelled", "blocked_payment"]
ActionStatus = Literal["pending", "success", "failed"]
ActionType = Literal["click", "type", "scroll", "key", "wait"]


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
    # REPLICA_MODE=multi: the server holding the running task keeps renewing this; a lease
    # that lapsed means that server died (server/tasks/lease.py)
    lease_until: datetime | None = None


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


class TaskStore(ABC):
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

    # -- which server holds a running task (REPLICA_MODE=multi; server/tasks/lease.py) --
    @abstractmethod
    async def renew_task_lease(self, user_id: str, task_id: str, until: datetime) -> bool:
        """The server holding this running task keeps it until ``until`` (``lease_until``;
        ``updated_at`` stays). False when the task is not running (paused or ended)."""

    @abstractmethod
    async def pause_lapsed_task(
        self, user_id: str, seen: TaskRecord, details: dict[str, Any]
    ) -> bool:
        """A running task whose holder stopped renewing becomes ``paused`` with ``details``
        (replaced) and no lease, in one conditional update: only while it is still as the
        caller ``seen`` it lapse (running, the same lease, no change since), so a renewal or
        any write meanwhile wins. False when nothing matched."""

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
