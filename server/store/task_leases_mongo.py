"""Task leases for the MongoDB store (the contract: server/store/tasks_base.py): each is
one conditional update_one on the task's document, so a renewal and a pause never both
win."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase


class MongoTaskLeases:
    """Mixed into MongoStore, which provides ``_d``, ``_now`` and ``_ms``."""

    _d: AsyncDatabase
    _now: Callable[[], datetime]
    _ms: Callable[[datetime], datetime]

    async def renew_task_lease(self, user_id: str, task_id: str, until: datetime) -> bool:
        query = {"user_id": user_id, "_id": task_id, "status": "running"}
        result = await self._d.tasks.update_one(query, {"$set": {"lease_until": self._ms(until)}})
        return result.matched_count > 0

    async def pause_lapsed_task(
        self, user_id: str, task_id: str, lease_until: datetime | None, details: dict[str, Any]
    ) -> bool:
        seen = self._ms(lease_until) if lease_until is not None else None
        query = {"user_id": user_id, "_id": task_id, "status": "running", "lease_until": seen}
        paused = {"status": "paused", "details": details, "updated_at": self._now()}
        result = await self._d.tasks.update_one(query, {"$set": paused | {"lease_until": None}})
        return result.matched_count > 0
