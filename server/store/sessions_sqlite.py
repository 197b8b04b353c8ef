"""Users, sessions and messages for SQLiteStore: their tables and rows.

A mixin of SQLiteStore (it uses the store's ``_write``, ``_fetch`` and clock ``_now``)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from server.store.base import MessageRecord, Role, SessionRecord, SessionStatus, new_id, utcnow
from server.store.sqlite_codec import SESSION_COLS, dumps, from_db_time, session_row, to_db_time

SESSIONS_SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    id          TEXT PRIMARY KEY,
    created_at  TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS sessions (
    id          TEXT PRIMARY KEY,
    user_id     TEXT NOT NULL,
    persona_id  TEXT NOT NULL,
    thread_id   TEXT NOT NULL,
    status      TEXT NOT NULL,
    settings    TEXT NOT NULL,
    started_at  TEXT NOT NULL,
    ended_at    TEXT
);
CREATE INDEX IF NOT EXISTS sessions_user_started ON sessions (user_id, started_at);
CREATE TABLE IF NOT EXISTS messages (
    id          TEXT PRIMARY KEY,
    session_id  TEXT NOT NULL,
    user_id     TEXT NOT NULL,
    persona_id  TEXT NOT NULL,
    role        TEXT NOT NULL,
    content     TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    timings     TEXT,
    interrupted INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS messages_user_session_created
    ON messages (user_id, session_id, created_at);
CREATE INDEX IF NOT EXISTS messages_user_persona_role ON messages (user_id, persona_id, role);
"""

_MESSAGE_COLS = (
    "id, session_id, user_id, persona_id, role, content, created_at, timings, interrupted"
)


def _message(row: Iterable[Any]) -> MessageRecord:
    mid, session_id, user_id, persona_id, role, content, created, timings, interrupted = row
    return MessageRecord(
        id=mid,
        session_id=session_id,
        user_id=user_id,
        persona_id=persona_id,
        role=role,
        content=content,
        created_at=from_db_time(created),
        timings=json.loads(timings) if timings is not None else None,
        interrupted=bool(interrupted),
    )


class SQLiteSessions:
    _write: Any  # SQLiteStore's serialised write transaction
    _fetch: Any
    _add_usage: Any  # SQLiteUsage: the usage upserts in a given transaction
    _now: Callable[[], datetime]

    async def ensure_user(self, user_id: str) -> None:
        async with self._write() as conn:
            await conn.execute(
                "INSERT OR IGNORE INTO users (id, created_at) VALUES (?, ?)",
                (user_id, to_db_time(utcnow())),
            )

    async def create_session(
        self, user_id: str, persona_id: str, settings: dict[str, Any] | None = None
    ) -> SessionRecord:
        sid = new_id()
        started = self._now()
        record = SessionRecord(
            id=sid,
            user_id=user_id,
            persona_id=persona_id,
            thread_id=sid,
            status="active",
            settings=dict(settings or {}),
            started_at=started,
        )
        async with self._write() as conn:
            await conn.execute(
                "INSERT OR IGNORE INTO users (id, created_at) VALUES (?, ?)",
                (user_id, to_db_time(started)),
            )
            await conn.execute(
                f"INSERT INTO sessions ({SESSION_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, NULL)",
                (
                    sid,
                    user_id,
                    persona_id,
                    sid,
                    record.status,
                    dumps(record.settings),
                    to_db_time(started),
                ),
            )
        return record

    async def get_session(self, user_id: str, session_id: str) -> SessionRecord | None:
        rows = await self._fetch(
            f"SELECT {SESSION_COLS} FROM sessions WHERE user_id = ? AND id = ?",
            (user_id, session_id),
        )
        return session_row(rows[0]) if rows else None

    async def list_sessions(
        self, user_id: str, limit: int = 50, offset: int = 0
    ) -> list[SessionRecord]:
        rows = await self._fetch(
            f"SELECT {SESSION_COLS} FROM sessions WHERE user_id = ? "
            "ORDER BY started_at DESC, rowid DESC LIMIT ? OFFSET ?",
            (user_id, limit, offset),
        )
        return [session_row(r) for r in rows]

    async def update_session(
        self,
        user_id: str,
        session_id: str,
        *,
        status: SessionStatus | None = None,
        settings: dict[str, Any] | None = None,
        ended_at: datetime | None = None,
    ) -> bool:
        sets: list[str] = []
        params: list[Any] = []
        if status is not None:
            sets.append("status = ?")
            params.append(status)
        if settings is not None:
            sets.append("settings = ?")
            params.append(dumps(settings))
        if ended_at is not None:
            sets.append("ended_at = ?")
            params.append(to_db_time(ended_at))
        if not sets:  # nothing to change: report whether it exists for this user
            return await self.get_session(user_id, session_id) is not None
        async with self._write() as conn:
            cur = await conn.execute(
                f"UPDATE sessions SET {', '.join(sets)} WHERE user_id = ? AND id = ?",
                (*params, user_id, session_id),
            )
            changed = cur.rowcount
            await cur.close()
        return changed > 0

    # -- messages ------------------------------------------------------------------

    async def add_message(
        self,
        user_id: str,
        session_id: str,
        persona_id: str,
        role: Role,
        content: str,
        *,
        timings: dict[str, Any] | None = None,
        interrupted: bool = False,
        message_id: str | None = None,
    ) -> MessageRecord:
        record = self._message(
            user_id, session_id, persona_id, role, content, timings, interrupted, message_id
        )
        async with self._write(single=True) as conn:  # once per turn's user line
            await _insert_message(conn, record)
        return record

    async def add_reply(
        self,
        user_id: str,
        session_id: str,
        persona_id: str,
        content: str,
        *,
        usage: dict[str, int],
        timings: dict[str, Any] | None = None,
        interrupted: bool = False,
        message_id: str | None = None,
    ) -> MessageRecord | None:
        """The reply and the usage counters in one transaction: one commit (an fsync at
        FULL) per turn's end instead of two."""
        record = None
        if content:
            record = self._message(
                user_id, session_id, persona_id, "assistant", content, timings, interrupted,
                message_id,
            )  # fmt: skip
        async with self._write() as conn:
            if record is not None:
                await _insert_message(conn, record)
            await self._add_usage(conn, user_id, usage)
        return record

    def _message(
        self,
        user_id: str,
        session_id: str,
        persona_id: str,
        role: Role,
        content: str,
        timings: dict[str, Any] | None,
        interrupted: bool,
        message_id: str | None,
    ) -> MessageRecord:
        return MessageRecord(
            id=message_id or new_id(),
            session_id=session_id,
            user_id=user_id,
            persona_id=persona_id,
            role=role,
            content=content,
            created_at=self._now(),
            timings=dict(timings) if timings is not None else None,
            interrupted=interrupted,
        )

    async def settle_message(self, user_id: str, message_id: str, content: str) -> bool:
        async with self._write() as conn:
            if content:
                cur = await conn.execute(
                    "UPDATE messages SET content = ?, interrupted = 1 WHERE user_id = ? AND id = ?",
                    (content, user_id, message_id),
                )
            else:
                cur = await conn.execute(
                    "DELETE FROM messages WHERE user_id = ? AND id = ?", (user_id, message_id)
                )
            changed = cur.rowcount
            await cur.close()
        return changed > 0

    async def delete_message(self, user_id: str, session_id: str, message_id: str) -> bool:
        async with self._write() as conn:
            cur = await conn.execute(
                "DELETE FROM messages WHERE user_id = ? AND session_id = ? AND id = ?",
                (user_id, session_id, message_id),
            )
            changed = cur.rowcount
            await cur.close()
        return changed > 0

    async def list_messages(
        self, user_id: str, session_id: str, limit: int = 100, offset: int = 0
    ) -> list[MessageRecord]:
        rows = await self._fetch(
            f"SELECT {_MESSAGE_COLS} FROM messages WHERE user_id = ? AND session_id = ? "
            "ORDER BY created_at, rowid LIMIT ? OFFSET ?",
            (user_id, session_id, limit, offset),
        )
        return [_message(r) for r in rows]

    async def count_messages(
        self, user_id: str, persona_id: str | None = None, role: Role | None = None
    ) -> int:
        sql = "SELECT COUNT(*) FROM messages WHERE user_id = ?"
        params: list[Any] = [user_id]
        if persona_id is not None:
            sql += " AND persona_id = ?"
            params.append(persona_id)
        if role is not None:
            sql += " AND role = ?"
            params.append(role)
        rows = await self._fetch(sql, params)
        return int(rows[0][0])


async def _insert_message(conn: Any, record: MessageRecord) -> None:
    await conn.execute(
        f"INSERT INTO messages ({_MESSAGE_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            record.id,
            record.session_id,
            record.user_id,
            record.persona_id,
            record.role,
            record.content,
            to_db_time(record.created_at),
            dumps(record.timings) if record.timings is not None else None,
            int(record.interrupted),
        ),
    )
