"""The `controlled_vocabulary` table (SQLite) and collection (MongoDB): memory categories.

Mixins for the two adapters, kept here so the adapters' own files do not grow."""

from __future__ import annotations

from typing import Any

from server.store.base import utcnow

SQLITE_SCHEMA = """
CREATE TABLE IF NOT EXISTS controlled_vocabulary (
    category    TEXT NOT NULL UNIQUE,
    created_at  TEXT NOT NULL
);
"""


class SQLiteVocabulary:
    _write: Any  # SQLiteStore's serialised write transaction
    _fetch: Any

    async def vocabulary_terms(self) -> list[str]:
        rows = await self._fetch("SELECT category FROM controlled_vocabulary ORDER BY category", ())
        return [r[0] for r in rows]

    async def add_vocabulary_terms(self, terms: list[str]) -> list[str]:
        inserted: list[str] = []
        now = utcnow().isoformat()
        async with self._write() as conn:
            for term in dict.fromkeys(terms):
                cur = await conn.execute(
                    "INSERT INTO controlled_vocabulary (category, created_at) VALUES (?, ?) "
                    "ON CONFLICT (category) DO NOTHING",
                    (term, now),
                )
                if cur.rowcount:
                    inserted.append(term)
        return inserted


class MongoVocabulary:
    """Each term is a document's ``_id``, unique by definition."""

    _d: Any  # MongoStore's database

    async def vocabulary_terms(self) -> list[str]:
        cursor = self._d.controlled_vocabulary.find({}, {"_id": 1}).sort("_id", 1)
        return [str(d["_id"]) async for d in cursor]

    async def add_vocabulary_terms(self, terms: list[str]) -> list[str]:
        inserted: list[str] = []
        now = utcnow()
        for term in dict.fromkeys(terms):
            res = await self._d.controlled_vocabulary.update_one(
                {"_id": term}, {"$setOnInsert": {"created_at": now}}, upsert=True
            )
            if res.upserted_id is not None:
                inserted.append(term)
        return inserted
