"""History (the studio's history viewer): the part of the store contract that deletes,
previews and searches past sessions and keeps their reports."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from server.store.base import SessionRecord


class HistoryStore(ABC):
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

    @abstractmethod
    async def put_report(self, user_id: str, session_id: str, report: dict[str, Any]) -> None: ...

    @abstractmethod
    async def get_report(self, user_id: str, session_id: str) -> dict[str, Any] | None: ...
