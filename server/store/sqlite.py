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
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import aiosqlite
from langgraph.checkpoint.base import BaseCheckpointSaver

from server.store.base import Store, utcnow
from server.store.checkpoints_sqlite import OneHopSqliteSaver
from server.store.history_sqlite import HISTORY_SCHEMA, SQLiteHistory
from server.store.initiative import APPROVALS_ADDED, SQLiteInitiative
from server.store.initiative import SQLITE_SCHEMA as INITIATIVE_SCHEMA
from server.store.ownership_sqlite import OWNERSHIP_SCHEMA, SQLiteOwnership
from server.store.reminders_sqlite import REMINDER_ADDED, REMINDERS_SCHEMA, SQLiteReminders
from server.store.samples_sqlite import SAMPLES_SCHEMA, SQLiteSamples
from server.store.sessions_sqlite import SESSIONS_SCHEMA, SQLiteSessions
from server.store.settings_sqlite import SETTINGS_SCHEMA, SQLiteSettings
from server.store.sqlite_codec import from_db_time, to_db_time
from server.store.task_actions_sqlite import SQLiteTaskActions
from server.store.task_leases_sqlite import SQLiteTaskLeases
from server.store.tasks_sqlite import TASKS_SCHEMA, SQLiteTasksMixin
from server.store.usage_sqlite import USAGE_SCHEMA, SQLiteUsage
from server.store.vocabulary import SQLITE_SCHEMA as VOCABULARY_SCHEMA
from server.store.vocabulary import SQLiteVocabulary

DB_FILENAME = "desktopmate.sqlite3"
CHECKPOINT_FILENAME = "checkpoints.sqlite3"

# Every column added after its table first shipped, added to older files on open; then
# what needs them.
_ADDED_COLUMNS = {
    "reminders": REMINDER_ADDED,
    "sessions": {"owner": "TEXT", "heartbeat_at": "TEXT"},  # crash recovery
    "approvals": APPROVALS_ADDED,
    "tasks": {"lease_until": "TEXT"},  # which server holds a running task (multi)
}
_AFTER_MIGRATION = "CREATE INDEX IF NOT EXISTS sessions_status_owner ON sessions (status, owner);"


async def _add_missing_columns(db: aiosqlite.Connection) -> None:
    for table, columns in _ADDED_COLUMNS.items():
        have = {row[1] for row in await db.execute_fetchall(f"PRAGMA table_info({table})")}
        for name, kind in columns.items():
            if name not in have:
                await db.execute(f"ALTER TABLE {table} ADD COLUMN {name} {kind}")


class SQLiteStore(
    SQLiteSessions,
    SQLiteOwnership,
    SQLiteSamples,
    SQLiteHistory,
    SQLiteUsage,
    SQLiteSettings,
    SQLiteReminders,
    SQLiteVocabulary,
    SQLiteInitiative,
    SQLiteTasksMixin,
    SQLiteTaskActions,
    SQLiteTaskLeases,
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
                SESSIONS_SCHEMA
                + OWNERSHIP_SCHEMA
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
    async def _write(self, single: bool = False) -> AsyncIterator[aiosqlite.Connection]:
        """One serialised write: returns once it is committed; an error rolls back this
        write only.

        Group commit: the first write commits at once; writes that finish while a commit
        is under way share the next one (one fsync for many under load, the same as one
        commit per write when quiet). A write joining others' uncommitted ones runs in a
        savepoint, so its failure undoes only itself. ``single``: the write is one
        statement, which SQLite undoes by itself when it fails, so it needs no savepoint
        (two thread hops fewer; a caller cancelled while its statement ran may find it
        committed with the others: stored, never acknowledged)."""
        conn = self._conn
        async with self._write_lock:
            # others' writes wait in the open transaction
            savepoint = self._batch is not None and not single
            if savepoint:
                await conn.execute("SAVEPOINT w")
            try:
                yield conn
            except BaseException:
                if savepoint:
                    await conn.execute("ROLLBACK TO w")
                    await conn.execute("RELEASE w")
                elif self._batch is None:
                    await conn.rollback()
                raise
            if savepoint:
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
