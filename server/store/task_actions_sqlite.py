"""The step log of a screen task in the SQLite store: the task_actions table.

A mixin of SQLiteStore beside SQLiteTasksMixin, which owns the tables' schema and the shared
row helpers (``_j``, ``_update_sql``, ``_update``). Apart because a task's steps are their own
life cycle: previewed (pending), then settled once, atomically with the task's route and
current step (``settle_task_action``)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime
from typing import Any

from server.store.base import ActionStatus, NewTaskAction, TaskActionRecord, new_id

_ACTION_COLS = (
    "id, task_id, user_id, step_number, action_type, target_element, status, created_at, "
    "updated_at, screenshot_ref, execution_time_ms, details"
)


class SQLiteTaskActions:
    """Task action methods of SQLiteStore, which provides ``_write``, ``_fetch``, ``_now``,
    the time converters ``_t`` and ``_db_t``, and (SQLiteTasksMixin) the row helpers."""

    _t: Callable[[str], datetime]
    _db_t: Callable[[datetime], str]
    _j: Callable[[Any], str]
    _update_sql: Callable[..., tuple[str, list[Any]]]
    _update: Callable[..., Awaitable[bool]]

    def _action(self, row: Iterable[Any]) -> TaskActionRecord:
        aid, tid, uid, step, kind, target, status, created, updated, ref, ms, details = row
        return TaskActionRecord(
            id=aid,
            task_id=tid,
            user_id=uid,
            step_number=step,
            action_type=kind,
            target_element=json.loads(target),
            status=status,
            created_at=self._t(created),
            updated_at=self._t(updated),
            screenshot_ref=ref,
            execution_time_ms=ms,
            details=json.loads(details),
        )

    def _new_action(self, user_id: str, task_id: str, new: NewTaskAction) -> TaskActionRecord:
        now = self._now()  # type: ignore[attr-defined]
        return TaskActionRecord(
            id=new_id(),
            task_id=task_id,
            user_id=user_id,
            step_number=new.step_number,
            action_type=new.action_type,
            target_element=dict(new.target_element),
            status="pending",
            created_at=now,
            updated_at=now,
            screenshot_ref=new.screenshot_ref,
            details=dict(new.details),
        )

    async def _insert_action(self, conn: Any, rec: TaskActionRecord) -> None:
        t = self._db_t(rec.created_at)
        await conn.execute(
            f"INSERT INTO task_actions ({_ACTION_COLS}) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, ?)",
            (
                rec.id,
                rec.task_id,
                rec.user_id,
                rec.step_number,
                rec.action_type,
                self._j(rec.target_element),
                rec.status,
                t,
                t,
                rec.screenshot_ref,
                self._j(rec.details),
            ),
        )

    async def add_task_action(
        self,
        user_id: str,
        task_id: str,
        step_number: int,
        action_type: str,
        target_element: dict[str, Any],
        *,
        screenshot_ref: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> TaskActionRecord:
        new = NewTaskAction(step_number, action_type, target_element, screenshot_ref)
        rec = self._new_action(user_id, task_id, new)
        rec.details = dict(details or {})
        async with self._write() as conn:  # type: ignore[attr-defined]
            await self._insert_action(conn, rec)
        return rec

    async def get_task_action(
        self, user_id: str, task_id: str, action_id: str
    ) -> TaskActionRecord | None:
        rows = await self._fetch(  # type: ignore[attr-defined]
            f"SELECT {_ACTION_COLS} FROM task_actions WHERE user_id = ? AND task_id = ? AND id = ?",
            (user_id, task_id, action_id),
        )
        return self._action(rows[0]) if rows else None

    async def list_task_actions(self, user_id: str, task_id: str) -> list[TaskActionRecord]:
        rows = await self._fetch(  # type: ignore[attr-defined]
            f"SELECT {_ACTION_COLS} FROM task_actions WHERE user_id = ? AND task_id = ? "
            "ORDER BY created_at, rowid",
            (user_id, task_id),
        )
        return [self._action(r) for r in rows]

    async def update_task_action(
        self,
        user_id: str,
        task_id: str,
        action_id: str,
        *,
        status: ActionStatus | None = None,
        execution_time_ms: int | None = None,
        details: dict[str, Any] | None = None,
        only_if_status: tuple[ActionStatus, ...] | None = None,
    ) -> bool:
        fields = {
            "status": status,
            "execution_time_ms": execution_time_ms,
            "details": self._j(details) if details is not None else None,
        }
        where = {"user_id": user_id, "task_id": task_id, "id": action_id}
        return await self._update("task_actions", where, fields, only_if_status)

    async def settle_task_action(
        self,
        user_id: str,
        task_id: str,
        action_id: str,
        *,
        status: ActionStatus,
        execution_time_ms: int | None,
        details: dict[str, Any],
        append_actual: dict[str, Any] | None = None,
        current_step: int | None = None,
        then_add: NewTaskAction | None = None,
    ) -> tuple[bool, TaskActionRecord | None]:
        fields = {"status": status, "execution_time_ms": execution_time_ms}
        fields["details"] = self._j(details)
        where = {"user_id": user_id, "task_id": task_id, "id": action_id}
        sql, params = self._update_sql("task_actions", where, fields, ("pending",))
        mine = (user_id, task_id)
        async with self._write() as conn:  # type: ignore[attr-defined]
            cur = await conn.execute(sql, params)
            if cur.rowcount <= 0:
                return False, None  # the commit of nothing is cheap
            now = self._db_t(self._now())  # type: ignore[attr-defined]
            if append_actual is not None:
                await conn.execute(
                    "UPDATE task_routes SET updated_at = ?, "
                    "actual_route = json_insert(actual_route, '$[#]', json(?)) "
                    "WHERE user_id = ? AND task_id = ?",
                    (now, self._j(append_actual), *mine),
                )
            if current_step is not None:
                await conn.execute(
                    "UPDATE tasks SET current_step = ?, updated_at = ? "
                    "WHERE user_id = ? AND id = ?",
                    (current_step, now, *mine),
                )
            added = self._new_action(user_id, task_id, then_add) if then_add else None
            if added is not None:
                await self._insert_action(conn, added)
        return True, added
