"""Usage counters, per user and per UTC day (the dashboard), and reply timings: the part
of the store contract the dashboard reads."""

from __future__ import annotations

from abc import ABC, abstractmethod
from datetime import datetime
from typing import Any


def check_counter_name(name: str) -> str:
    """Counter names must also be valid MongoDB field names (no dots, no leading $).

    Checked by both adapters so code developed against SQLite does not fail later on MongoDB.
    """
    if not name or "." in name or name.startswith("$"):
        raise ValueError(f"invalid usage counter name: {name!r}")
    return name


class UsageStore(ABC):
    # incr_usage also adds every counter to the bucket of the current UTC day.

    @abstractmethod
    async def incr_usage(self, user_id: str, counters: dict[str, int]) -> None: ...

    @abstractmethod
    async def get_usage(self, user_id: str) -> dict[str, int]: ...

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
