"""Approvals and proactive fires in MongoDB (see initiative.py for what they are)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from server.store.base import (
    ApprovalRecord,
    ApprovalStatus,
    ProactiveFireRecord,
    utcnow,
)
from server.store.initiative import DECIDED


def _approval_doc(d: dict[str, Any]) -> ApprovalRecord:
    return ApprovalRecord(
        id=d["approval_id"],
        user_id=d["user_id"],
        session_id=d["session_id"],
        name=d["name"],
        arguments=d["arguments"],
        description=d["description"],
        status=d["status"],
        created_at=d["created_at"],
        expires_at=d["expires_at"],
        decided_at=d.get("decided_at"),
        decided_arguments=d.get("decided_arguments"),
        message=d.get("message"),
    )


async def create_initiative_indexes(db: AsyncDatabase) -> None:
    await db.approvals.create_index(
        [("user_id", ASCENDING), ("approval_id", ASCENDING)], unique=True, name="user_id_unique"
    )
    await db.approvals.create_index(
        [("user_id", ASCENDING), ("created_at", DESCENDING)], name="user_created"
    )
    await db.proactive_fires.create_index(
        [("user_id", ASCENDING), ("key", ASCENDING)], unique=True, name="user_key_unique"
    )


class MongoInitiative:
    _d: Any  # MongoStore's database

    async def add_approval(
        self,
        user_id: str,
        session_id: str,
        approval_id: str,
        name: str,
        arguments: dict[str, Any],
        description: str,
        expires_at: datetime,
    ) -> ApprovalRecord:
        doc = {
            "approval_id": approval_id,
            "user_id": user_id,
            "session_id": session_id,
            "name": name,
            "arguments": arguments,
            "description": description,
            "status": "pending",
            "created_at": utcnow(),
            "expires_at": expires_at.astimezone(UTC),
        }
        await self._d.approvals.insert_one(dict(doc))
        return _approval_doc(doc)

    async def get_approval(self, user_id: str, approval_id: str) -> ApprovalRecord | None:
        d = await self._d.approvals.find_one({"user_id": user_id, "approval_id": approval_id})
        return None if d is None else _approval_doc(d)

    async def decide_approval(
        self,
        user_id: str,
        approval_id: str,
        status: ApprovalStatus,
        arguments: dict[str, Any] | None = None,
        message: str | None = None,
    ) -> ApprovalRecord | None:
        if status not in DECIDED:
            raise ValueError(f"not a decision: {status!r}")
        res = await self._d.approvals.update_one(
            {"user_id": user_id, "approval_id": approval_id, "status": "pending"},
            {
                "$set": {
                    "status": status,
                    "decided_at": utcnow(),
                    "decided_arguments": arguments,
                    "message": message,
                }
            },
        )
        return await self.get_approval(user_id, approval_id) if res.modified_count else None

    async def claim_approval(self, user_id: str, approval_id: str, owner: str) -> bool:
        res = await self._d.approvals.update_one(
            {
                "user_id": user_id,
                "approval_id": approval_id,
                "status": {"$ne": "pending"},
                "carried_by": None,  # missing or null
            },
            {"$set": {"carried_by": owner}},
        )
        return bool(res.modified_count)

    async def list_approvals(
        self,
        user_id: str,
        status: ApprovalStatus | None = None,
        session_id: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> list[ApprovalRecord]:
        query: dict[str, Any] = {"user_id": user_id}
        if status is not None:
            query["status"] = status
        if session_id is not None:
            query["session_id"] = session_id
        cursor = (
            self._d.approvals.find(query).sort("created_at", DESCENDING).skip(offset).limit(limit)
        )
        return [_approval_doc(d) async for d in cursor]

    async def claim_proactive_fire(
        self, user_id: str, key: str, trigger: str, session_id: str | None = None
    ) -> bool:
        try:
            await self._d.proactive_fires.insert_one(
                {
                    "user_id": user_id,
                    "key": key,
                    "trigger": trigger,
                    "session_id": session_id,
                    "fired_at": utcnow(),
                }
            )
        except DuplicateKeyError:
            return False
        return True

    async def list_proactive_fires(
        self, user_id: str, limit: int = 50
    ) -> list[ProactiveFireRecord]:
        cursor = (
            self._d.proactive_fires.find({"user_id": user_id})
            .sort("fired_at", DESCENDING)
            .limit(limit)
        )
        return [
            ProactiveFireRecord(
                d["user_id"], d["key"], d["trigger"], d.get("session_id"), d["fired_at"]
            )
            async for d in cursor
        ]
