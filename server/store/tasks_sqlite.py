"""Screen-task tables for the SQLite store: tasks, task_actions, task_routes, consent.

A mixin of SQLiteStore (it uses the store's connection, write lock and clock). JSON columns
hold the parts whose shape belongs to server/tasks (target element, details, routes). The
schema of all four tables and the row helpers live here; a task's steps (task_actions) are
read and written by server/store/task_actions_sqlite.py."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from server.store.base import (
    CONSENT_ITEMS,
    TaskRecord,
    TaskRouteRecord,
    TaskStatus,
    new_id,
    utcnow,
)

TASKS_SCHEMA = """
CREATE TABLE IF NOT EXISTS tasks (
    id           TEXT PRIMARY KEY,
    user_id      TEXT NOT NULL,
    app_name     TEXT NOT NULL,
    description  TEXT NOT NULL,
    status       TEXT NOT NULL,
    current_step INTEGER NOT NULL,
    started_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL,
    ended_at     TEXT,
    details      TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS tasks_user_started ON tasks (user_id, started_at);
CREATE TABLE IF NOT EXISTS task_actions (
    id                TEXT PRIMARY KEY,
    task_id           TEXT NOT NULL,
    user_id           TEXT NOT NULL,
    step_number       INTEGER NOT NULL,
    action_type       TEXT NOT NULL,
    target_element    TEXT NOT NULL,
    status            TEXT NOT NULL,
    created_at        TEXT NOT NULL,
    updated_at        TEXT NOT NULL,
    screenshot_ref    TEXT,
    execution_time_ms INTEGER,
    details           TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS task_actions_user_task ON task_actions (user_id, task_id, created_at);
CREATE TABLE IF NOT EXISTS task_routes (
    task_id       TEXT PRIMARY KEY,
    user_id       TEXT NOT NULL,
    planned_route TEXT NOT NULL,
    actual_route  TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS consent (
    user_id    TEXT NOT NULL,
    item       TEXT NOT NULL,
    agreed_at  TEXT NOT NULL,
    PRIMARY KEY (user_id, item)
) WITHOUT ROWID;
"""

_TASK_COLS = (
    "id, user_id, app_name, description, status, current_step, started_at, updated_at, "
    "ended_at, details, lease_until"
)


def check_consent_items(items: Iterable[str]) -> None:
    """Only the seed's four items exist (shared by both adapters)."""
    unknown = sorted(set(items) - set(CONSENT_ITEMS))
    if unknown:
        raise ValueError(f"unknown consent items: {unknown} (known: {list(CONSENT_ITEMS)})")


class SQLiteTasksMixin:
    """Task, route and consent methods of SQLiteStore, which provides ``_write``,
    ``_fetch``, ``_now`` and the time converters ``_t`` (text -> datetime) and ``_db_t``."""

    _t: Callable[[str], datetime]
    _db_t: Callable[[datetime], str]

    def _task(self, row: Iterable[Any]) -> TaskRecord:
        tid, user_id, app, desc, status, step, started, updated, ended, details, lease = row
        return TaskRecord(
            id=tid,
            user_id=user_id,
            app_name=app,
            description=desc,
            status=status,
            current_step=step,
            started_at=self._t(started),
            updated_at=self._t(updated),
            ended_at=self._t(ended) if ended is not None else None,
            details=json.loads(details),
            lease_until=self._t(lease) if lease is not None else None,
        )

    @staticmethod
    def _j(value: Any) -> str:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))

    async def create_task(self, user_id: str, app_name: str, description: str) -> TaskRecord:
        now = self._now()  # type: ignore[attr-defined]
        rec = TaskRecord(
            id=new_id(),
            user_id=user_id,
            app_name=app_name,
            description=description,
            status="running",
            current_step=0,
            started_at=now,
            updated_at=now,
        )
        t = self._db_t(now)
        async with self._write() as conn:  # type: ignore[attr-defined]
            await conn.execute(
                f"INSERT INTO tasks ({_TASK_COLS}) "
                "VALUES (?, ?, ?, ?, ?, 0, ?, ?, NULL, '{}', NULL)",
                (rec.id, user_id, app_name, description, rec.status, t, t),
            )
            await conn.execute(
                "INSERT INTO task_routes VALUES (?, ?, '[]', '[]', ?, ?)", (rec.id, user_id, t, t)
            )
        return rec

    async def get_task(self, user_id: str, task_id: str) -> TaskRecord | None:
        rows = await self._fetch(  # type: ignore[attr-defined]
            f"SELECT {_TASK_COLS} FROM tasks WHERE user_id = ? AND id = ?", (user_id, task_id)
        )
        return self._task(rows[0]) if rows else None

    async def list_tasks(self, user_id: str, limit: int = 50, offset: int = 0) -> list[TaskRecord]:
        rows = await self._fetch(  # type: ignore[attr-defined]
            f"SELECT {_TASK_COLS} FROM tasks WHERE user_id = ? "
            "ORDER BY started_at DESC, rowid DESC LIMIT ? OFFSET ?",
            (user_id, limit, offset),
        )
        return [self._task(r) for r in rows]

    def _update_sql(
        self,
        table: str,
        where: dict[str, Any],
        fields: dict[str, Any],
        only_if_status: tuple[str, ...] | None,
    ) -> tuple[str, list[Any]]:
        fields = {k: v for k, v in fields.items() if v is not None}
        fields["updated_at"] = self._db_t(self._now())  # type: ignore[attr-defined]
        sql = f"UPDATE {table} SET " + ", ".join(f"{k} = ?" for k in fields)
        sql += " WHERE " + " AND ".join(f"{k} = ?" for k in where)
        params = [*fields.values(), *where.values()]
        if only_if_status is not None:
            sql += f" AND status IN ({', '.join('?' * len(only_if_status))})"
            params += list(only_if_status)
        return sql, params

    async def _update(
        self,
        table: str,
        where: dict[str, Any],
        fields: dict[str, Any],
        only_if_status: tuple[str, ...] | None,
    ) -> bool:
        sql, params = self._update_sql(table, where, fields, only_if_status)
        async with self._write() as conn:  # type: ignore[attr-defined]
            cur = await conn.execute(sql, params)
            changed = cur.rowcount
            await cur.close()
        return changed > 0

    async def update_task(
        self,
        user_id: str,
        task_id: str,
        *,
        status: TaskStatus | None = None,
        current_step: int | None = None,
        details: dict[str, Any] | None = None,
        ended_at: datetime | None = None,
        only_if_status: tuple[TaskStatus, ...] | None = None,
    ) -> bool:
        fields = {
            "status": status,
            "current_step": current_step,
            "details": self._j(details) if details is not None else None,
            "ended_at": self._db_t(ended_at) if ended_at is not None else None,
        }
        where = {"user_id": user_id, "id": task_id}
        return await self._update("tasks", where, fields, only_if_status)

    async def delete_task(self, user_id: str, task_id: str) -> bool:
        async with self._write() as conn:  # type: ignore[attr-defined]
            cur = await conn.execute(
                "DELETE FROM tasks WHERE user_id = ? AND id = ?", (user_id, task_id)
            )
            deleted = cur.rowcount
            await cur.close()
            if deleted:
                for table in ("task_actions", "task_routes"):
                    await conn.execute(
                        f"DELETE FROM {table} WHERE user_id = ? AND task_id = ?",
                        (user_id, task_id),
                    )
        return deleted > 0

    async def get_task_route(self, user_id: str, task_id: str) -> TaskRouteRecord | None:
        rows = await self._fetch(  # type: ignore[attr-defined]
            "SELECT task_id, user_id, planned_route, actual_route, created_at, updated_at "
            "FROM task_routes WHERE user_id = ? AND task_id = ?",
            (user_id, task_id),
        )
        if not rows:
            return None
        tid, uid, planned, actual, created, updated = rows[0]
        return TaskRouteRecord(
            tid, uid, json.loads(planned), json.loads(actual), self._t(created), self._t(updated)
        )

    async def update_task_route(
        self,
        user_id: str,
        task_id: str,
        *,
        planned_route: list[Any] | None = None,
        append_actual: dict[str, Any] | None = None,
    ) -> bool:
        sets, params = ["updated_at = ?"], [self._db_t(self._now())]  # type: ignore[attr-defined]
        if planned_route is not None:
            sets.append("planned_route = ?")
            params.append(self._j(planned_route))
        if append_actual is not None:  # json_insert appends in the same statement: atomic
            sets.append("actual_route = json_insert(actual_route, '$[#]', json(?))")
            params.append(self._j(append_actual))
        async with self._write() as conn:  # type: ignore[attr-defined]
            cur = await conn.execute(
                f"UPDATE task_routes SET {', '.join(sets)} WHERE user_id = ? AND task_id = ?",
                (*params, user_id, task_id),
            )
            changed = cur.rowcount
            await cur.close()
        return changed > 0

    async def get_consent(self, user_id: str) -> dict[str, datetime]:
        rows = await self._fetch(  # type: ignore[attr-defined]
            "SELECT item, agreed_at FROM consent WHERE user_id = ?", (user_id,)
        )
        return {item: self._t(at) for item, at in rows}

    async def set_consent(self, user_id: str, items: dict[str, bool]) -> dict[str, datetime]:
        check_consent_items(items)
        now = self._db_t(utcnow())
        async with self._write() as conn:  # type: ignore[attr-defined]
            for item, agreed in items.items():
                if agreed:
                    await conn.execute(
                        "INSERT OR IGNORE INTO consent (user_id, item, agreed_at) VALUES (?, ?, ?)",
                        (user_id, item, now),
                    )
                else:
                    await conn.execute(
                        "DELETE FROM consent WHERE user_id = ? AND item = ?", (user_id, item)
                    )
        return await self.get_consent(user_id)
