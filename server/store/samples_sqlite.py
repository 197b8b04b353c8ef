"""Analysis samples for SQLiteStore: the samples table.

A mixin of SQLiteStore (it uses the store's ``_write`` and ``_fetch``)."""

from __future__ import annotations

import json
from typing import Any

from server.store.samples_base import Sample
from server.store.sqlite_codec import dumps

SAMPLES_SCHEMA = """
CREATE TABLE IF NOT EXISTS samples (
    user_id     TEXT NOT NULL,
    session_id  TEXT NOT NULL,
    kind        TEXT NOT NULL,
    t_ms        INTEGER NOT NULL,
    data        TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS samples_user_session_t ON samples (user_id, session_id, t_ms);
"""


class SQLiteSamples:
    _write: Any  # SQLiteStore's serialised write transaction
    _fetch: Any

    async def add_samples(self, user_id: str, session_id: str, samples: list[Sample]) -> None:
        if not samples:
            return
        async with self._write() as conn:
            await conn.executemany(
                "INSERT INTO samples (user_id, session_id, kind, t_ms, data) "
                "VALUES (?, ?, ?, ?, ?)",
                [(user_id, session_id, s.kind, int(s.t_ms), dumps(s.data)) for s in samples],
            )

    async def list_samples(
        self, user_id: str, session_id: str, kind: str | None = None, limit: int = 10_000
    ) -> list[Sample]:
        sql = "SELECT kind, t_ms, data FROM samples WHERE user_id = ? AND session_id = ?"
        params: list[Any] = [user_id, session_id]
        if kind is not None:
            sql += " AND kind = ?"
            params.append(kind)
        sql += " ORDER BY t_ms, rowid LIMIT ?"
        params.append(limit)
        rows = await self._fetch(sql, params)
        return [Sample(kind=k, t_ms=t, data=json.loads(d)) for k, t, d in rows]
