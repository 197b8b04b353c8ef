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
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import aiosqlite
from langgraph.checkpoint.base import BaseCheckpointSaver

from server.store.base import (
    MessageRecord,
    ReminderRecord,
    ReminderStatus,
    Repeat,
    Role,
    Sample,
    SessionRecord,
    SessionStatus,
    Store,
    new_id,
    utcnow,
)
from server.store.checkpoints_sqlite import OneHopSqliteSaver
from server.store.initiative import SQLITE_SCHEMA as INITIATIVE_SCHEMA
from server.store.initiative import SQLiteInitiative
from server.store.tasks_sqlite import TASKS_SCHEMA, SQLiteTasksMixin
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
CREATE TABLE IF NOT EXISTS samples (
    user_id     TEXT NOT NULL,
    session_id  TEXT NOT NULL,
    kind        TEXT NOT NULL,
    t_ms        INTEGER NOT NULL,
    data        TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS samples_user_session_t ON samples (user_id, session_id, t_ms);
CREATE TABLE IF NOT EXISTS usage (
    user_id     TEXT NOT NULL,
    name        TEXT NOT NULL,
    value       INTEGER NOT NULL,
    PRIMARY KEY (user_id, name)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS user_settings (
    user_id     TEXT PRIMARY KEY,
    settings    TEXT NOT NULL,
    updated_at  TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS usage_daily (
    user_id     TEXT NOT NULL,
    day         TEXT NOT NULL,
    name        TEXT NOT NULL,
    value       INTEGER NOT NULL,
    PRIMARY KEY (user_id, day, name)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS reports (
    user_id     TEXT NOT NULL,
    session_id  TEXT NOT NULL,
    report      TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    PRIMARY KEY (user_id, session_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS reminders (
    id           TEXT PRIMARY KEY,
    user_id      TEXT NOT NULL,
    text         TEXT NOT NULL,
    due_at       TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    status       TEXT NOT NULL,
    delivered_at TEXT,
    attempts     INTEGER NOT NULL DEFAULT 0,
    last_error   TEXT,
    not_before   TEXT,
    repeat       TEXT,
    occurrences  INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS reminders_user_status_due ON reminders (user_id, status, due_at);
"""

_SESSION_COLS = "id, user_id, persona_id, thread_id, status, settings, started_at, ended_at"
_MESSAGE_COLS = (
    "id, session_id, user_id, persona_id, role, content, created_at, timings, interrupted"
)
_REMINDER_COLS = (
    "id, user_id, text, due_at, created_at, status, delivered_at, attempts, last_error, "
    "not_before, repeat, occurrences"
)
# Columns added after the reminders table first shipped: added to older databases at open.
_REMINDER_ADDED = {
    "attempts": "INTEGER NOT NULL DEFAULT 0",
    "last_error": "TEXT",
    "not_before": "TEXT",
    "repeat": "TEXT",  # recurring reminders: Repeat as JSON
    "occurrences": "INTEGER NOT NULL DEFAULT 0",
}
# Every column added after its table first shipped, added to older files on open; then
# what needs them.
_ADDED_COLUMNS = {
    "reminders": _REMINDER_ADDED,
    "sessions": {"owner": "TEXT", "heartbeat_at": "TEXT"},  # crash recovery
}
_AFTER_MIGRATION = "CREATE INDEX IF NOT EXISTS sessions_status_owner ON sessions (status, owner);"


def _to_db_time(dt: datetime) -> str:
    """Fixed-width ISO UTC text, so string order equals time order in SQL."""
    if dt.tzinfo is None:  # naive values are taken to be UTC already
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _from_db_time(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def check_close_status(status: str) -> str:
    """A reminder can only be closed as delivered or cancelled (never back to pending)."""
    if status not in ("delivered", "cancelled"):
        raise ValueError(f"invalid reminder close status: {status!r}")
    return status


def check_counter_name(name: str) -> str:
    """Counter names must also be valid MongoDB field names (no dots, no leading $).

    Checked here too so code developed against SQLite does not fail later on MongoDB.
    """
    if not name or "." in name or name.startswith("$"):
        raise ValueError(f"invalid usage counter name: {name!r}")
    return name


def _session(row: Iterable[Any]) -> SessionRecord:
    sid, user_id, persona_id, thread_id, status, settings, started, ended = row
    return SessionRecord(
        id=sid,
        user_id=user_id,
        persona_id=persona_id,
        thread_id=thread_id,
        status=status,
        settings=json.loads(settings),
        started_at=_from_db_time(started),
        ended_at=_from_db_time(ended) if ended is not None else None,
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
        created_at=_from_db_time(created),
        timings=json.loads(timings) if timings is not None else None,
        interrupted=bool(interrupted),
    )


def _reminder(row: Iterable[Any]) -> ReminderRecord:
    rid, user_id, text, due, created, status, delivered, attempts, last_error, not_before = row[:10]
    repeat, occurrences = row[10:]
    return ReminderRecord(
        id=rid,
        user_id=user_id,
        text=text,
        due_at=_from_db_time(due),
        created_at=_from_db_time(created),
        status=status,
        delivered_at=_from_db_time(delivered) if delivered is not None else None,
        attempts=attempts,
        last_error=last_error,
        not_before=_from_db_time(not_before) if not_before is not None else None,
        repeat=Repeat.from_dict(json.loads(repeat)) if repeat else None,
        occurrences=occurrences,
    )


async def _add_missing_columns(db: aiosqlite.Connection) -> None:
    for table, columns in _ADDED_COLUMNS.items():
        have = {row[1] for row in await db.execute_fetchall(f"PRAGMA table_info({table})")}
        for name, kind in columns.items():
            if name not in have:
                await db.execute(f"ALTER TABLE {table} ADD COLUMN {name} {kind}")


class SQLiteStore(SQLiteVocabulary, SQLiteInitiative, SQLiteTasksMixin, Store):
    """Store in ``path/desktopmate.sqlite3``; checkpoints in ``path/checkpoints.sqlite3``.

    ``path`` is the data directory (created on open). One connection serves all
    queries; writes are serialised by a lock so one coroutine's commit or rollback
    never lands in the middle of another's transaction.
    """

    _t = staticmethod(_from_db_time)
    _db_t = staticmethod(_to_db_time)

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
            await db.executescript(_SCHEMA + TASKS_SCHEMA + INITIATIVE_SCHEMA + VOCABULARY_SCHEMA)
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
                (user_id, _to_db_time(utcnow())),
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
                (user_id, _to_db_time(started)),
            )
            await conn.execute(
                f"INSERT INTO sessions ({_SESSION_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, NULL)",
                (
                    sid,
                    user_id,
                    persona_id,
                    sid,
                    record.status,
                    _dumps(record.settings),
                    _to_db_time(started),
                ),
            )
        return record

    async def get_session(self, user_id: str, session_id: str) -> SessionRecord | None:
        rows = await self._fetch(
            f"SELECT {_SESSION_COLS} FROM sessions WHERE user_id = ? AND id = ?",
            (user_id, session_id),
        )
        return _session(rows[0]) if rows else None

    async def list_sessions(
        self, user_id: str, limit: int = 50, offset: int = 0
    ) -> list[SessionRecord]:
        rows = await self._fetch(
            f"SELECT {_SESSION_COLS} FROM sessions WHERE user_id = ? "
            "ORDER BY started_at DESC, rowid DESC LIMIT ? OFFSET ?",
            (user_id, limit, offset),
        )
        return [_session(r) for r in rows]

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
            params.append(_dumps(settings))
        if ended_at is not None:
            sets.append("ended_at = ?")
            params.append(_to_db_time(ended_at))
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

    # -- live sessions: ownership and crash recovery -------------------------------

    async def claim_session(self, user_id: str, session_id: str, owner: str) -> bool:
        async with self._write() as conn:
            cur = await conn.execute(
                "UPDATE sessions SET status = 'active', owner = ?, heartbeat_at = ? "
                "WHERE user_id = ? AND id = ?",
                (owner, _to_db_time(utcnow()), user_id, session_id),
            )
            changed = cur.rowcount
            await cur.close()
        return changed > 0

    async def heartbeat_sessions(self, owner: str) -> int:
        async with self._write() as conn:
            cur = await conn.execute(
                "UPDATE sessions SET heartbeat_at = ? WHERE status = 'active' AND owner = ?",
                (_to_db_time(utcnow()), owner),
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
        params = (owner, _to_db_time(stale_before))
        async with self._write() as conn:
            rows = await conn.execute_fetchall(f"SELECT id FROM sessions WHERE {where}", params)
            await conn.execute(f"UPDATE sessions SET status = 'interrupted' WHERE {where}", params)
        return [r[0] for r in rows]

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
                    _to_db_time(record.created_at),
                    _dumps(record.timings) if record.timings is not None else None,
                    int(interrupted),
                ),
            )
        return record

    async def settle_message(self, user_id: str, message_id: str, content: str) -> bool:
        async with self._write() as conn:
            if content:
                cur = await conn.execute(
                    "UPDATE messages SET content = ? WHERE user_id = ? AND id = ?",
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

    # -- samples -------------------------------------------------------------------

    async def add_samples(self, user_id: str, session_id: str, samples: list[Sample]) -> None:
        if not samples:
            return
        async with self._write() as conn:
            await conn.executemany(
                "INSERT INTO samples (user_id, session_id, kind, t_ms, data) "
                "VALUES (?, ?, ?, ?, ?)",
                [(user_id, session_id, s.kind, int(s.t_ms), _dumps(s.data)) for s in samples],
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

    # -- usage and reports ---------------------------------------------------------

    async def incr_usage(self, user_id: str, counters: dict[str, int]) -> None:
        if not counters:
            return
        rows = [(user_id, check_counter_name(k), int(n)) for k, n in counters.items()]
        day = utcnow().date().isoformat()
        async with self._write() as conn:
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

    async def get_user_settings(self, user_id: str) -> dict[str, Any]:
        rows = await self._fetch("SELECT settings FROM user_settings WHERE user_id = ?", (user_id,))
        return json.loads(rows[0][0]) if rows else {}

    async def put_user_settings(self, user_id: str, settings: dict[str, Any]) -> None:
        async with self._write() as conn:
            await conn.execute(
                "INSERT INTO user_settings (user_id, settings, updated_at) VALUES (?, ?, ?) "
                "ON CONFLICT (user_id) DO UPDATE SET settings = excluded.settings, "
                "updated_at = excluded.updated_at",
                (user_id, _dumps(settings), _to_db_time(utcnow())),
            )

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
            f"SELECT {_SESSION_COLS} FROM sessions s WHERE user_id = ? AND EXISTS (SELECT 1 "
            "FROM messages m WHERE m.user_id = s.user_id AND m.session_id = s.id AND "
            "m.content LIKE ? ESCAPE '\\') ORDER BY started_at DESC, rowid DESC LIMIT ?",
            (user_id, like, limit),
        )
        return [_session(r) for r in rows]

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
            (user_id, _to_db_time(since), _to_db_time(until), limit),
        )
        return [(_from_db_time(c), p, json.loads(t)) for c, p, t in rows]

    async def put_report(self, user_id: str, session_id: str, report: dict[str, Any]) -> None:
        async with self._write() as conn:
            await conn.execute(
                "INSERT INTO reports (user_id, session_id, report, updated_at) "
                "VALUES (?, ?, ?, ?) ON CONFLICT (user_id, session_id) DO UPDATE SET "
                "report = excluded.report, updated_at = excluded.updated_at",
                (user_id, session_id, _dumps(report), _to_db_time(utcnow())),
            )

    async def get_report(self, user_id: str, session_id: str) -> dict[str, Any] | None:
        rows = await self._fetch(
            "SELECT report FROM reports WHERE user_id = ? AND session_id = ?",
            (user_id, session_id),
        )
        return json.loads(rows[0][0]) if rows else None

    # -- reminders -----------------------------------------------------------------

    async def add_reminder(
        self, user_id: str, text: str, due_at: datetime, repeat: Repeat | None = None
    ) -> ReminderRecord:
        due = _to_db_time(due_at)
        record = ReminderRecord(
            id=new_id(),
            user_id=user_id,
            text=text,
            due_at=_from_db_time(due),  # aware UTC, as it reads back
            created_at=self._now(),
            repeat=repeat,
        )
        async with self._write() as conn:
            await conn.execute(
                f"INSERT INTO reminders ({_REMINDER_COLS}) "
                "VALUES (?, ?, ?, ?, ?, ?, NULL, 0, NULL, NULL, ?, 0)",
                (
                    record.id,
                    user_id,
                    text,
                    due,
                    _to_db_time(record.created_at),
                    record.status,
                    _dumps(repeat.as_dict()) if repeat else None,
                ),
            )
        return record

    async def get_reminder(self, user_id: str, reminder_id: str) -> ReminderRecord | None:
        rows = await self._fetch(
            f"SELECT {_REMINDER_COLS} FROM reminders WHERE user_id = ? AND id = ?",
            (user_id, reminder_id),
        )
        return _reminder(rows[0]) if rows else None

    async def list_reminders(
        self, user_id: str, status: ReminderStatus | None = None, limit: int = 100
    ) -> list[ReminderRecord]:
        sql = f"SELECT {_REMINDER_COLS} FROM reminders WHERE user_id = ?"
        params: list[Any] = [user_id]
        if status is not None:
            sql += " AND status = ?"
            params.append(status)
        sql += " ORDER BY due_at, created_at, rowid LIMIT ?"
        params.append(limit)
        rows = await self._fetch(sql, params)
        return [_reminder(r) for r in rows]

    async def count_reminders(self, user_id: str, status: ReminderStatus) -> int:
        rows = await self._fetch(
            "SELECT COUNT(*) FROM reminders WHERE user_id = ? AND status = ?", (user_id, status)
        )
        return int(rows[0][0])

    async def close_reminder(
        self, user_id: str, reminder_id: str, status: Literal["delivered", "cancelled"]
    ) -> bool:
        check_close_status(status)
        async with self._write() as conn:
            cur = await conn.execute(
                "UPDATE reminders SET status = ?, delivered_at = ? "
                "WHERE id = ? AND user_id = ? AND status = 'pending'",
                (status, _to_db_time(utcnow()), reminder_id, user_id),
            )
            changed = cur.rowcount
            await cur.close()
        return changed > 0

    async def claim_reminder(self, user_id: str, reminder_id: str, until: datetime) -> bool:
        async with self._write() as conn:
            cur = await conn.execute(
                "UPDATE reminders SET not_before = ? WHERE id = ? AND user_id = ? "
                "AND status = 'pending' AND (not_before IS NULL OR not_before <= ?)",
                (_to_db_time(until), reminder_id, user_id, _to_db_time(utcnow())),
            )
            changed = cur.rowcount
            await cur.close()
        return changed > 0

    async def fail_reminder_attempt(
        self, user_id: str, reminder_id: str, reason: str, retry_at: datetime | None
    ) -> bool:
        if retry_at is None:
            sql = (
                "UPDATE reminders SET attempts = attempts + 1, last_error = ?, "
                "not_before = NULL, status = 'failed', delivered_at = ? "
            )
            params: list[Any] = [reason, _to_db_time(utcnow())]
        else:
            sql = "UPDATE reminders SET attempts = attempts + 1, last_error = ?, not_before = ? "
            params = [reason, _to_db_time(retry_at)]
        async with self._write() as conn:
            cur = await conn.execute(
                sql + "WHERE id = ? AND user_id = ? AND status = 'pending'",
                (*params, reminder_id, user_id),
            )
            changed = cur.rowcount
            await cur.close()
        return changed > 0

    async def advance_reminder(
        self,
        user_id: str,
        reminder_id: str,
        due_at: datetime,
        next_due: datetime,
        error: str | None = None,
    ) -> bool:
        if error is None:
            done = "occurrences = occurrences + 1, delivered_at = ?, last_error = NULL"
            params: list[Any] = [_to_db_time(utcnow())]
        else:
            done, params = "last_error = ?", [error]
        async with self._write() as conn:
            cur = await conn.execute(
                f"UPDATE reminders SET {done}, due_at = ?, attempts = 0, not_before = NULL "
                "WHERE id = ? AND user_id = ? AND status = 'pending' AND due_at = ? "
                "AND repeat IS NOT NULL",
                (*params, _to_db_time(next_due), reminder_id, user_id, _to_db_time(due_at)),
            )
            changed = cur.rowcount
            await cur.close()
        return changed > 0
