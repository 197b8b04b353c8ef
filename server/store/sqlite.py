"""Embedded store: one SQLite file (WAL) in the data dir, via aiosqlite.

The desktop sidecar runs without any database server, so this is the default adapter.
LangGraph checkpoints live in a second file next to it, on their own connection and thread
(server/store/checkpoints_sqlite.py: one hop per operation), so a
long checkpoint write never holds up a chat message insert (and vice versa).

Durability: every write method returns after its transaction committed (aiosqlite awaits
the commit in its thread; concurrent writes share commits, see ``_write``), so a caller may
acknowledge it. In WAL mode a committed
transaction survives a killed process at any ``synchronous`` level; surviving a power
loss or OS crash needs ``synchronous=FULL`` (an fsync of the WAL per commit, about
0.25 ms here). The main file uses ``SQLITE_SYNCHRONOUS`` [FULL]: it holds what clients are
told is stored. The checkpoint file stays at NORMAL: the model's history is rebuilt from
the stored transcript when they disagree (server/agent/history_sync.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import aiosqlite
from langgraph.checkpoint.base import BaseCheckpointSaver

from server.store.base import (
    MessageRecord,
    Role,
    SessionRecord,
    SessionStatus,
    Store,
    new_id,
    utcnow,
)
from server.store.checkpoints_sqlite import OneHopSqliteSaver
from server.store.history_sqlite import HISTORY_SCHEMA, SQLiteHistory
from server.store.initiative import APPROVALS_ADDED, SQLiteInitiative
from server.store.initiative import SQLITE_SCHEMA as INITIATIVE_SCHEMA
from server.store.ownership_sqlite import SQLiteOwnership
from server.store.reminders_sqlite import REMINDER_ADDED, REMINDERS_SCHEMA, SQLiteReminders
from server.store.samples_sqlite import SAMPLES_SCHEMA, SQLiteSamples
from server.store.settings_sqlite import SETTINGS_SCHEMA, SQLiteSettings
from server.store.sqlite_codec import SESSION_COLS, dumps, from_db_time, session_row, to_db_time
from server.store.tasks_sqlite import TASKS_SCHEMA, SQLiteTasksMixin
from server.store.usage_sqlite import USAGE_SCHEMA, SQLiteUsage
from server.store.vocabulary import SQLITE_SCHEMA as VOCABULARY_SCHEMA
from server.store.vocabulary import SQLiteVocabulary

DB_FILENAME = "desktopmate.sqlite3"
CHECKPOINT_FILENAME = "checkpoints.sqlite3"

_SCHEMA = """
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
# Every column added after its table first shipped, added to older files on open; then
# what needs them.
_ADDED_COLUMNS = {
    "reminders": REMINDER_ADDED,
    "sessions": {"owner": "TEXT", "heartbeat_at": "TEXT"},  # crash recovery
    "approvals": APPROVALS_ADDED,
}
_AFTER_MIGRATION = "CREATE INDEX IF NOT EXISTS sessions_status_owner ON sessions (status, owner);"


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


async def _add_missing_columns(db: aiosqlite.Connection) -> None:
    for table, columns in _ADDED_COLUMNS.items():
        have = {row[1] for row in await db.execute_fetchall(f"PRAGMA table_info({table})")}
        for name, kind in columns.items():
            if name not in have:
                await db.execute(f"ALTER TABLE {table} ADD COLUMN {name} {kind}")


class SQLiteStore(
    SQLiteOwnership,
    SQLiteSamples,
    SQLiteHistory,
    SQLiteUsage,
    SQLiteSettings,
    SQLiteReminders,
    SQLiteVocabulary,
    SQLiteInitiative,
    SQLiteTasksMixin,
    Store,
):
    """Store in ``path/desktopmate.sqlite3``; checkpoints in ``path/checkpoints.sqlite3``.

    ``path`` is the data directory (created on open). One connection serves all
    queries; writes are serialised by a lock so one coroutine's commit or rollback
    never lands in the middle of another's transaction.
    """

    _t = staticmethod(from_db_time)
    _db_t = staticmethod(to_db_time)

    def __init__(self, path: Path, synchronous: Literal["FULL", "NORMAL"] = "FULL") -> None:
        if synchronous not in ("FULL", "NORMAL"):
            raise ValueError(f"synchronous must be FULL or NORMAL, not {synchronous!r}")
        self.synchronous = synchronous
        self.data_dir = Path(path)
        self.db_path = self.data_dir / DB_FILENAME
        self.checkpoint_path = self.data_dir / CHECKPOINT_FILENAME
        self._db: aiosqlite.Connection | None = None
        self._saver: OneHopSqliteSaver | None = None
        self._write_lock = asyncio.Lock()
        self._batch: asyncio.Future[None] | None = None  # written, waiting for a commit
        self._committer: asyncio.Task[None] | None = None
        self._last_time: datetime | None = None

    # -- lifecycle -----------------------------------------------------------------

    async def open(self) -> None:
        if self._db is not None:
            return
        self.data_dir.mkdir(parents=True, exist_ok=True)
        db = await aiosqlite.connect(self.db_path)
        try:
            await db.execute("PRAGMA journal_mode=WAL")
            await db.execute(f"PRAGMA synchronous={self.synchronous}")
            await db.execute("PRAGMA busy_timeout=5000")
            await db.executescript(
                _SCHEMA
                + SAMPLES_SCHEMA
                + USAGE_SCHEMA
                + SETTINGS_SCHEMA
                + HISTORY_SCHEMA
                + REMINDERS_SCHEMA
                + TASKS_SCHEMA
                + INITIATIVE_SCHEMA
                + VOCABULARY_SCHEMA
            )
            await _add_missing_columns(db)
            await db.executescript(_AFTER_MIGRATION)
            await db.commit()
            # the connection is opened, and lives, on the saver's own thread
            saver = await asyncio.to_thread(OneHopSqliteSaver, self.checkpoint_path)
        except BaseException:
            await db.close()
            raise
        self._db, self._saver = db, saver

    async def close(self) -> None:
        if self._committer is not None and not self._committer.done():
            with contextlib.suppress(Exception):
                await self._committer  # what was acknowledged is committed first
        db, saver = self._db, self._saver
        self._db = self._saver = None
        try:
            if saver is not None:
                await saver.aclose()
        finally:
            if db is not None:
                await db.close()

    async def ping(self) -> bool:
        if self._db is None:
            return False
        try:
            rows = await self._db.execute_fetchall("SELECT 1")
        except Exception:
            return False
        return list(rows) == [(1,)]

    def checkpointer(self) -> BaseCheckpointSaver:
        if self._saver is None:
            raise RuntimeError("SQLiteStore.checkpointer() needs open() first")
        return self._saver

    # -- helpers -------------------------------------------------------------------

    @property
    def _conn(self) -> aiosqlite.Connection:
        if self._db is None:
            raise RuntimeError("SQLiteStore is not open")
        return self._db

    @asynccontextmanager
    async def _write(self) -> AsyncIterator[aiosqlite.Connection]:
        """One serialised write: returns once it is committed; an error rolls back this
        write only.

        Group commit: the first write commits at once; writes that finish while a commit
        is under way share the next one (one fsync for many under load, the same as one
        commit per write when quiet). A write joining others' uncommitted ones runs in a
        savepoint, so its failure undoes only itself."""
        conn = self._conn
        async with self._write_lock:
            joined = self._batch is not None  # others' writes wait in the open transaction
            if joined:
                await conn.execute("SAVEPOINT w")
            try:
                yield conn
            except BaseException:
                if joined:
                    await conn.execute("ROLLBACK TO w")
                    await conn.execute("RELEASE w")
                else:
                    await conn.rollback()
                raise
            if joined:
                await conn.execute("RELEASE w")
            if self._batch is None:
                self._batch = asyncio.get_running_loop().create_future()
            batch = self._batch
            if self._committer is None or self._committer.done():
                self._committer = asyncio.create_task(self._commit_batches())
        await asyncio.shield(batch)  # a cancelled caller must not cancel the others' commit

    async def _commit_batches(self) -> None:
        """Commit what is waiting, until nothing is; tell each batch how it went."""
        conn = self._conn
        while self._batch is not None:
            async with self._write_lock:
                batch, self._batch = self._batch, None
                if batch is None:
                    continue
                try:
                    await conn.commit()
                except BaseException as e:
                    with contextlib.suppress(Exception):
                        await conn.rollback()
                    batch.set_exception(e)
                    batch.exception()  # retrieved: the writers each get it raised
                    if isinstance(e, asyncio.CancelledError):
                        raise
                else:
                    batch.set_result(None)

    def _now(self) -> datetime:
        """utcnow(), bumped by 1 µs on ties so insertion order equals time order."""
        now = utcnow()
        if self._last_time is not None and now <= self._last_time:
            now = self._last_time + timedelta(microseconds=1)
        self._last_time = now
        return now

    async def _fetch(self, sql: str, params: Iterable[Any]) -> list[Any]:
        return list(await self._conn.execute_fetchall(sql, tuple(params)))

    # -- users and sessions --------------------------------------------------------

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
        record = MessageRecord(
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
        async with self._write() as conn:
            await conn.execute(
                f"INSERT INTO messages ({_MESSAGE_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    record.id,
                    session_id,
                    user_id,
                    persona_id,
                    role,
                    content,
                    to_db_time(record.created_at),
                    dumps(record.timings) if record.timings is not None else None,
                    int(interrupted),
                ),
            )
        return record

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
