"""Usage for SQLiteStore: the usage and usage_daily tables, reply timings from messages.

A mixin of SQLiteStore (it uses the store's ``_write`` and ``_fetch``)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from server.store.base import utcnow
from server.store.sqlite_codec import from_db_time, to_db_time
from server.store.usage_base import check_counter_name

USAGE_SCHEMA = """
CREATE TABLE IF NOT EXISTS usage (
    user_id     TEXT NOT NULL,
    name        TEXT NOT NULL,
    value       INTEGER NOT NULL,
    PRIMARY KEY (user_id, name)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS usage_daily (
    user_id     TEXT NOT NULL,
    day         TEXT NOT NULL,
    name        TEXT NOT NULL,
    value       INTEGER NOT NULL,
    PRIMARY KEY (user_id, day, name)
) WITHOUT ROWID;
"""


class SQLiteUsage:
    _write: Any  # SQLiteStore's serialised write transaction
    _fetch: Any

    async def incr_usage(self, user_id: str, counters: dict[str, int]) -> None:
        if not counters:
            return
        async with self._write() as conn:
            await self._add_usage(conn, user_id, counters)

    @staticmethod
    async def _add_usage(conn: Any, user_id: str, counters: dict[str, int]) -> None:
        """The counters' upserts, in the caller's transaction (incr_usage, add_reply)."""
        if not counters:
            return
        rows = [(user_id, check_counter_name(k), int(n)) for k, n in counters.items()]
        day = utcnow().date().isoformat()
        await conn.executemany(
            "INSERT INTO usage (user_id, name, value) VALUES (?, ?, ?) "
            "ON CONFLICT (user_id, name) DO UPDATE SET value = value + excluded.value",
            rows,
        )
        await conn.executemany(
            "INSERT INTO usage_daily (user_id, day, name, value) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (user_id, day, name) DO UPDATE SET value = value + excluded.value",
            [(u, day, k, n) for u, k, n in rows],
        )

    async def get_usage(self, user_id: str) -> dict[str, int]:
        rows = await self._fetch(
            "SELECT name, value FROM usage WHERE user_id = ? ORDER BY name", (user_id,)
        )
        return {name: int(value) for name, value in rows}

    async def get_usage_daily(
        self, user_id: str, first_day: str, last_day: str
    ) -> dict[str, dict[str, int]]:
        rows = await self._fetch(
            "SELECT day, name, value FROM usage_daily WHERE user_id = ? AND day >= ? "
            "AND day <= ? ORDER BY day, name",
            (user_id, first_day, last_day),
        )
        out: dict[str, dict[str, int]] = {}
        for day, name, value in rows:
            out.setdefault(day, {})[name] = int(value)
        return out

    async def list_reply_timings(
        self, user_id: str, since: datetime, until: datetime, limit: int = 20_000
    ) -> list[tuple[datetime, str, dict[str, Any]]]:
        rows = await self._fetch(
            "SELECT created_at, persona_id, timings FROM messages WHERE user_id = ? "
            "AND role = 'assistant' AND timings IS NOT NULL AND created_at >= ? "
            "AND created_at < ? ORDER BY created_at LIMIT ?",
            (user_id, to_db_time(since), to_db_time(until), limit),
        )
        return [(from_db_time(c), p, json.loads(t)) for c, p, t in rows]
