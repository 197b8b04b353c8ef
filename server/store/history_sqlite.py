"""History for SQLiteStore: delete, preview and search sessions; the reports table.

A mixin of SQLiteStore (it uses the store's ``_write``, ``_fetch``, ``get_session`` and
checkpointer)."""

from __future__ import annotations

import json
from typing import Any

from server.store.base import SessionRecord, utcnow
from server.store.sqlite_codec import SESSION_COLS, dumps, session_row, to_db_time

HISTORY_SCHEMA = """
CREATE TABLE IF NOT EXISTS reports (
    user_id     TEXT NOT NULL,
    session_id  TEXT NOT NULL,
    report      TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    PRIMARY KEY (user_id, session_id)
) WITHOUT ROWID;
"""


class SQLiteHistory:
    _write: Any  # SQLiteStore's serialised write transaction
    _fetch: Any
    get_session: Any
    checkpointer: Any

    async def delete_session(self, user_id: str, session_id: str) -> bool:
        rec = await self.get_session(user_id, session_id)
        if rec is None:
            return False
        async with self._write() as conn:
            for table in ("messages", "samples", "reports"):
                await conn.execute(
                    f"DELETE FROM {table} WHERE user_id = ? AND session_id = ?",
                    (user_id, session_id),
                )
            await conn.execute(
                "DELETE FROM sessions WHERE user_id = ? AND id = ?", (user_id, session_id)
            )
        await self.checkpointer().adelete_thread(rec.thread_id)
        return True

    async def session_previews(
        self, user_id: str, session_ids: list[str]
    ) -> dict[str, tuple[str | None, int]]:
        if not session_ids:
            return {}
        marks = ",".join("?" * len(session_ids))
        rows = await self._fetch(
            "SELECT session_id, COUNT(*), (SELECT content FROM messages f WHERE "
            "f.user_id = m.user_id AND f.session_id = m.session_id AND f.role = 'user' "
            "ORDER BY f.created_at, f.rowid LIMIT 1) FROM messages m "
            f"WHERE user_id = ? AND session_id IN ({marks}) GROUP BY session_id",
            (user_id, *session_ids),
        )
        return {sid: (first, int(n)) for sid, n, first in rows}

    async def search_sessions(
        self, user_id: str, query: str, limit: int = 50
    ) -> list[SessionRecord]:
        like = "%" + query.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        rows = await self._fetch(
            f"SELECT {SESSION_COLS} FROM sessions s WHERE user_id = ? AND EXISTS (SELECT 1 "
            "FROM messages m WHERE m.user_id = s.user_id AND m.session_id = s.id AND "
            "m.content LIKE ? ESCAPE '\\') ORDER BY started_at DESC, rowid DESC LIMIT ?",
            (user_id, like, limit),
        )
        return [session_row(r) for r in rows]

    async def put_report(self, user_id: str, session_id: str, report: dict[str, Any]) -> None:
        async with self._write() as conn:
            await conn.execute(
                "INSERT INTO reports (user_id, session_id, report, updated_at) "
                "VALUES (?, ?, ?, ?) ON CONFLICT (user_id, session_id) DO UPDATE SET "
                "report = excluded.report, updated_at = excluded.updated_at",
                (user_id, session_id, dumps(report), to_db_time(utcnow())),
            )

    async def get_report(self, user_id: str, session_id: str) -> dict[str, Any] | None:
        rows = await self._fetch(
            "SELECT report FROM reports WHERE user_id = ? AND session_id = ?",
            (user_id, session_id),
        )
        return json.loads(rows[0][0]) if rows else None
