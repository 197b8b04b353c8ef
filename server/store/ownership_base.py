"""Live sessions: which process serves each one, and crash recovery (that part of the
store contract; server/hub/liveness.py and takeover.py use it).

Unlike the rest of the contract, these are server-wide maintenance operations (not scoped
by a user): they never return user data, only which sessions changed state."""

from __future__ import annotations

from abc import ABC, abstractmethod
from datetime import datetime


class OwnershipStore(ABC):
    @abstractmethod
    async def claim_session(self, user_id: str, session_id: str, owner: str) -> bool:
        """The process ``owner`` (its INSTANCE_ID) serves this session now: status active,
        owner and heartbeat recorded. False when it is not this user's session."""

    @abstractmethod
    async def beat_instance(self, owner: str, token: str) -> str | None:
        """Record that the process ``token`` (new each run) runs as ``owner`` now. Returns
        the token recorded for ``owner`` before when it is another one, else None: after a
        process's first beat, another token means a second live process shares its
        INSTANCE_ID (a dead one never beats again)."""

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
