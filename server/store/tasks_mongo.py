"""Screen-task collections for the MongoDB store: tasks, task_actions, task_routes, consent.

A mixin of MongoStore (it uses the store's database handle ``_d`` and clock ``_now``).
Conditional updates are single update_one calls, so two writers never both win."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.database import AsyncDatabase

from server.store.base import (
    ActionStatus,
    NewTaskAction,
    TaskActionRecord,
    TaskRecord,
    TaskRouteRecord,
    TaskStatus,
    new_id,
    utcnow,
)
from server.store.tasks_sqlite import check_consent_items


async def create_task_indexes(db: AsyncDatabase) -> None:
    await db.tasks.create_index(
        [("user_id", ASCENDING), ("started_at", DESCENDING)], name="user_started"
    )
    await db.task_actions.create_index(
        [("user_id", ASCENDING), ("task_id", ASCENDING), ("created_at", ASCENDING)],
        name="user_task_created",
    )
    await db.task_routes.create_index([("user_id", ASCENDING)], name="user")
    await db.consent.create_index(
        [("user_id", ASCENDING), ("item", ASCENDING)], unique=True, name="user_item_unique"
    )


def _aware(dt: datetime | None) -> datetime | None:
    return dt.astimezone(UTC) if dt is not None else None


def _task(doc: dict[str, Any]) -> TaskRecord:
    return TaskRecord(
        id=doc["_id"],
        user_id=doc["user_id"],
        app_name=doc["app_name"],
        description=doc["description"],
        status=doc["status"],
        current_step=doc["current_step"],
        started_at=doc["started_at"].astimezone(UTC),
        updated_at=doc["updated_at"].astimezone(UTC),
        ended_at=_aware(doc.get("ended_at")),
        details=doc.get("details") or {},
        lease_until=_aware(doc.get("lease_until")),
    )


def _action(doc: dict[str, Any]) -> TaskActionRecord:
    return TaskActionRecord(
        id=doc["_id"],
        task_id=doc["task_id"],
        user_id=doc["user_id"],
        step_number=doc["step_number"],
        action_type=doc["action_type"],
        target_element=doc.get("target_element") or {},
        status=doc["status"],
        created_at=doc["created_at"].astimezone(UTC),
        updated_at=doc["updated_at"].astimezone(UTC),
        screenshot_ref=doc.get("screenshot_ref"),
        execution_time_ms=doc.get("execution_time_ms"),
        details=doc.get("details") or {},
    )


class MongoTasksMixin:
    """Task, action, route and consent methods of MongoStore."""

    _d: AsyncDatabase
    _now: Callable[[], datetime]
    _ms: Callable[[datetime], datetime]

    async def create_task(self, user_id: str, app_name: str, description: str) -> TaskRecord:
        now = self._now()
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
        await self._d.tasks.insert_one(
            {
                "_id": rec.id,
                "user_id": user_id,
                "app_name": app_name,
                "description": description,
                "status": rec.status,
                "current_step": 0,
                "started_at": now,
                "updated_at": now,
                "ended_at": None,
                "details": {},
            }
        )
        await self._d.task_routes.insert_one(
            {
                "_id": rec.id,
                "user_id": user_id,
                "planned_route": [],
                "actual_route": [],
                "created_at": now,
                "updated_at": now,
            }
        )
        return rec

    async def get_task(self, user_id: str, task_id: str) -> TaskRecord | None:
        doc = await self._d.tasks.find_one({"user_id": user_id, "_id": task_id})
        return _task(doc) if doc is not None else None

    async def list_tasks(self, user_id: str, limit: int = 50, offset: int = 0) -> list[TaskRecord]:
        cursor = (
            self._d.tasks.find({"user_id": user_id})
            .sort([("started_at", DESCENDING), ("_id", DESCENDING)])
            .skip(offset)
            .limit(limit)
        )
        return [_task(d) async for d in cursor]

    async def _update(
        self,
        collection: str,
        query: dict[str, Any],
        fields: dict[str, Any],
        only_if_status: tuple[str, ...] | None,
    ) -> bool:
        fields = {k: v for k, v in fields.items() if v is not None}
        fields["updated_at"] = self._now()
        if only_if_status is not None:
            query = {**query, "status": {"$in": list(only_if_status)}}
        result = await self._d[collection].update_one(query, {"$set": fields})
        return result.matched_count > 0

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
            "details": details,
            "ended_at": self._ms(ended_at) if ended_at is not None else None,
        }
        query = {"user_id": user_id, "_id": task_id}
        return await self._update("tasks", query, fields, only_if_status)

    async def delete_task(self, user_id: str, task_id: str) -> bool:
        result = await self._d.tasks.delete_one({"user_id": user_id, "_id": task_id})
        if result.deleted_count == 0:
            return False
        await self._d.task_actions.delete_many({"user_id": user_id, "task_id": task_id})
        await self._d.task_routes.delete_one({"user_id": user_id, "_id": task_id})
        return True

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
        now = self._now()
        rec = TaskActionRecord(
            id=new_id(),
            task_id=task_id,
            user_id=user_id,
            step_number=step_number,
            action_type=action_type,
            target_element=dict(target_element),
            status="pending",
            created_at=now,
            updated_at=now,
            screenshot_ref=screenshot_ref,
            details=dict(details or {}),
        )
        await self._d.task_actions.insert_one(
            {
                "_id": rec.id,
                "task_id": task_id,
                "user_id": user_id,
                "step_number": step_number,
                "action_type": action_type,
                "target_element": rec.target_element,
                "status": rec.status,
                "created_at": now,
                "updated_at": now,
                "screenshot_ref": screenshot_ref,
                "execution_time_ms": None,
                "details": rec.details,
            }
        )
        return rec

    async def get_task_action(
        self, user_id: str, task_id: str, action_id: str
    ) -> TaskActionRecord | None:
        doc = await self._d.task_actions.find_one(
            {"user_id": user_id, "task_id": task_id, "_id": action_id}
        )
        return _action(doc) if doc is not None else None

    async def list_task_actions(self, user_id: str, task_id: str) -> list[TaskActionRecord]:
        cursor = self._d.task_actions.find({"user_id": user_id, "task_id": task_id}).sort(
            [("created_at", ASCENDING), ("_id", ASCENDING)]
        )
        return [_action(d) async for d in cursor]

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
        fields = {"status": status, "execution_time_ms": execution_time_ms, "details": details}
        query = {"user_id": user_id, "task_id": task_id, "_id": action_id}
        return await self._update("task_actions", query, fields, only_if_status)

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
        """Single-document writes (no multi-document transaction needed: the action's
        conditional update decides, and only its winner writes the route, the step and the
        next action)."""
        fields = {"status": status, "execution_time_ms": execution_time_ms, "details": details}
        query = {"user_id": user_id, "task_id": task_id, "_id": action_id}
        if not await self._update("task_actions", query, fields, ("pending",)):
            return False, None
        if append_actual is not None:
            await self.update_task_route(user_id, task_id, append_actual=append_actual)
        if current_step is not None:
            await self.update_task(user_id, task_id, current_step=current_step)
        if then_add is None:
            return True, None
        n = then_add
        added = await self.add_task_action(
            user_id,
            task_id,
            n.step_number,
            n.action_type,
            n.target_element,
            screenshot_ref=n.screenshot_ref,
            details=n.details,
        )
        return True, added

    async def get_task_route(self, user_id: str, task_id: str) -> TaskRouteRecord | None:
        doc = await self._d.task_routes.find_one({"user_id": user_id, "_id": task_id})
        if doc is None:
            return None
        return TaskRouteRecord(
            task_id=doc["_id"],
            user_id=doc["user_id"],
            planned_route=doc.get("planned_route") or [],
            actual_route=doc.get("actual_route") or [],
            created_at=doc["created_at"].astimezone(UTC),
            updated_at=doc["updated_at"].astimezone(UTC),
        )

    async def update_task_route(
        self,
        user_id: str,
        task_id: str,
        *,
        planned_route: list[Any] | None = None,
        append_actual: dict[str, Any] | None = None,
    ) -> bool:
        update: dict[str, Any] = {"$set": {"updated_at": self._now()}}
        if planned_route is not None:
            update["$set"]["planned_route"] = planned_route
        if append_actual is not None:
            update["$push"] = {"actual_route": append_actual}
        result = await self._d.task_routes.update_one({"user_id": user_id, "_id": task_id}, update)
        return result.matched_count > 0

    async def get_consent(self, user_id: str) -> dict[str, datetime]:
        cursor = self._d.consent.find({"user_id": user_id})
        return {d["item"]: d["agreed_at"].astimezone(UTC) async for d in cursor}

    async def set_consent(self, user_id: str, items: dict[str, bool]) -> dict[str, datetime]:
        check_consent_items(items)
        now = self._ms(utcnow())
        for item, agreed in items.items():
            key = {"user_id": user_id, "item": item}
            if agreed:  # $setOnInsert: an item agreed before keeps its first time
                await self._d.consent.update_one(
                    key, {"$setOnInsert": {"agreed_at": now}}, upsert=True
                )
            else:
                await self._d.consent.delete_one(key)
        return await self.get_consent(user_id)
