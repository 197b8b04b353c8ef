"""The user's saved defaults for new sessions: that part of the store contract."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any


class SettingsStore(ABC):
    @abstractmethod
    async def get_user_settings(self, user_id: str) -> dict[str, Any]:
        """The user's saved defaults ({} when none)."""

    @abstractmethod
    async def put_user_settings(self, user_id: str, settings: dict[str, Any]) -> None:
        """Replace the user's saved defaults."""
