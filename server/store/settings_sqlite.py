"""The user's saved defaults for SQLiteStore: the user_settings table.

A mixin of SQLiteStore (it uses the store's ``_write`` and ``_fetch``)."""

from __future__ import annotations

import json
from typing import Any

from server.store.base import utcnow
from server.store.sqlite_codec import dumps, to_db_time

SETTINGS_SCHEMA = """
CREATE TABLE IF NOT EXISTS user_settings (
    user_id     TEXT PRIMARY KEY,
    settings    TEXT NOT NULL,
    updated_at  TEXT NOT NULL
) WITHOUT ROWID;
"""


class SQLiteSettings:
    _write: Any  # SQLiteStore's serialised write transaction
    _fetch: Any

    async def get_user_settings(self, user_id: str) -> dict[str, Any]:
        rows = await self._fetch("SELECT settings FROM user_settings WHERE user_id = ?", (user_id,))
        return json.loads(rows[0][0]) if rows else {}

    async def put_user_settings(self, user_id: str, settings: dict[str, Any]) -> None:
        async with self._write() as conn:
            await conn.execute(
                "INSERT INTO user_settings (user_id, settings, updated_at) VALUES (?, ?, ?) "
                "ON CONFLICT (user_id) DO UPDATE SET settings = excluded.settings, "
                "updated_at = excluded.updated_at",
                (user_id, dumps(settings), to_db_time(utcnow())),
            )
