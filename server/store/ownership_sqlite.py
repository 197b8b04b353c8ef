"""Live sessions for SQLiteStore: owner and heartbeat columns of the sessions table.

A mixin of SQLiteStore (it uses the store's ``_write`` and ``_fetch``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from server.store.base import utcnow
from server.store.sqlite_codec import to_db_time

# Which process (a token new each run) last ran as each INSTANCE_ID (beat_instance).
OWNERSHIP_SCHEMA = """
CREATE TABLE IF NOT EXISTS instances (
    id       TEXT PRIMARY KEY,
    token    TEXT NOT NULL,
    beat_at  TEXT NOT NULL
);
"""


class SQLiteOwnership:
    _write: Any  # SQLiteStore's serialised write transaction
    _fetch: Any

    async def claim_session(self, user_id: str, session_id: str, owner: str) -> bool:
        async with self._write() as conn:
            cur = await conn.execute(
                "UPDATE sessions SET status = 'active', owner = ?, heartbeat_at = ? "
                "WHERE user_id = ? AND id = ?",
                (owner, to_db_time(utcnow()), user_id, session_id),
            )
            changed = cur.rowcount
            await cur.close()
        return changed > 0

    async def beat_instance(self, owner: str, token: str) -> str | None:
        async with self._write() as conn:
            rows = await conn.execute_fetchall("SELECT token FROM instances WHERE id = ?", (owner,))
            await conn.execute(
                "INSERT INTO instances (id, token, beat_at) VALUES (?, ?, ?) "
                "ON CONFLICT (id) DO UPDATE SET token = excluded.token, beat_at = excluded.beat_at",
                (owner, token, to_db_time(utcnow())),
            )
        prev = rows[0][0] if rows else None
        return prev if prev != token else None

    async def heartbeat_sessions(self, owner: str) -> int:
        async with self._write() as conn:
            cur = await conn.execute(
                "UPDATE sessions SET heartbeat_at = ? WHERE status = 'active' AND owner = ?",
                (to_db_time(utcnow()), owner),
            )
            changed = cur.rowcount
            await cur.close()
        return changed

    async def sessions_owned_elsewhere(self, session_ids: list[str], owner: str) -> list[str]:
        if not session_ids:
            return []
        marks = ",".join("?" * len(session_ids))
        rows = await self._fetch(
            f"SELECT id FROM sessions WHERE id IN ({marks}) AND owner IS NOT NULL AND owner != ?",
            (*session_ids, owner),
        )
        return [r[0] for r in rows]

    async def recover_sessions(self, stale_before: datetime, owner: str | None = None) -> list[str]:
        where = "status = 'active' AND owner IS NOT NULL AND (owner = ? OR heartbeat_at < ?)"
        params = (owner, to_db_time(stale_before))
        async with self._write() as conn:
            rows = await conn.execute_fetchall(f"SELECT id FROM sessions WHERE {where}", params)
            await conn.execute(f"UPDATE sessions SET status = 'interrupted' WHERE {where}", params)
        return [r[0] for r in rows]
