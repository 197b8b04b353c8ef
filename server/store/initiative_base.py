"""Approvals and proactive fires: their records and that part of the store contract
(adapters: server/store/initiative.py)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

ApprovalStatus = Literal["pending", "approved", "edited", "rejected", "expired"]
# the name prefix of a screen task action's approval (server/tasks/approval.py): its call id
# is the action's id, and the task runner, not the agent's gate, asks and settles it
TASK_APPROVAL_PREFIX = "screen_task."


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


class InitiativeStore(ABC):
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
    async def claim_approval(self, user_id: str, approval_id: str, owner: str) -> bool:
        """Several servers on one store (REPLICA_MODE=multi): the process ``owner`` carries
        out this *decided* approval (runs or skips the call, continues the turn). True for
        the one caller that may; False when another claimed it, or it is still pending, or
        not the user's."""

    @abstractmethod
    async def claim_proactive_fire(
        self, user_id: str, key: str, trigger: str, session_id: str | None = None
    ) -> bool:
        """Insert-or-ignore on (user, key): True for the one caller that may speak."""

    @abstractmethod
    async def list_proactive_fires(
        self, user_id: str, limit: int = 50
    ) -> list[ProactiveFireRecord]: ...
