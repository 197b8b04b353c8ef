"""The user's saved defaults for MongoStore: the user_settings collection (keyed by user).

A mixin of MongoStore (it uses the store's database ``_d``)."""

from __future__ import annotations

from typing import Any

from server.store.base import utcnow
from server.store.mongo_codec import ms


class MongoSettings:
    _d: Any  # MongoStore's database

    async def get_user_settings(self, user_id: str) -> dict[str, Any]:
        doc = await self._d.user_settings.find_one({"_id": user_id})
        return dict(doc["settings"]) if doc is not None else {}

    async def put_user_settings(self, user_id: str, settings: dict[str, Any]) -> None:
        await self._d.user_settings.update_one(
            {"_id": user_id},
            {"$set": {"settings": settings, "updated_at": ms(utcnow())}},
            upsert=True,
        )
