"""Task leases for the SQLite store (the contract: server/store/tasks_base.py). SQLite is
one machine's file, so REPLICA_MODE=multi never runs on it; the methods exist so both
adapters keep one contract and a single server's tests prove it."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

from server.store.tasks_base import TaskRecord


class SQLiteTaskLeases:
    """Mixed into SQLiteStore, which provides ``_write``, ``_now`` and ``_db_t``."""

    _db_t: Callable[[datetime], str]

    async def renew_task_lease(self, user_id: str, task_id: str, until: datetime) -> bool:
        sql = "UPDATE tasks SET lease_until = ? WHERE user_id = ? AND id = ? AND status = ?"
        return await self._changed(sql, (self._db_t(until), user_id, task_id, "running"))

    async def pause_lapsed_task(
        self, user_id: str, seen: TaskRecord, details: dict[str, Any]
    ) -> bool:
        now = self._db_t(self._now())  # type: ignore[attr-defined]
        lease = self._db_t(seen.lease_until) if seen.lease_until is not None else None
        sql = (
            "UPDATE tasks SET status = 'paused', details = ?, updated_at = ?, lease_until = NULL "
            "WHERE user_id = ? AND id = ? AND status = 'running' AND lease_until IS ? "
            "AND updated_at = ?"
        )
        text = json.dumps(details, ensure_ascii=False, separators=(",", ":"))
        changed = (text, now, user_id, seen.id, lease, self._db_t(seen.updated_at))
        return await self._changed(sql, changed)

    async def _changed(self, sql: str, params: tuple[Any, ...]) -> bool:
        async with self._write() as conn:  # type: ignore[attr-defined]
            cur = await conn.execute(sql, params)
            changed = cur.rowcount
            await cur.close()
        return changed > 0
