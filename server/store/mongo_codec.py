"""How MongoStore and its per-area mixins encode values: BSON keeps milliseconds, so times
are truncated before they are stored and returned; session documents."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from server.store.base import SessionRecord


def ms(dt: datetime) -> datetime:
    """Aware UTC datetime truncated to what BSON keeps (milliseconds)."""
    if dt.tzinfo is None:  # naive values are taken to be UTC already
        dt = dt.replace(tzinfo=UTC)
    dt = dt.astimezone(UTC)
    return dt.replace(microsecond=dt.microsecond // 1000 * 1000)


def aware(dt: datetime | None) -> datetime | None:
    return dt.astimezone(UTC) if dt is not None else None


def session_doc(doc: dict[str, Any]) -> SessionRecord:
    return SessionRecord(
        id=doc["_id"],
        user_id=doc["user_id"],
        persona_id=doc["persona_id"],
        thread_id=doc["thread_id"],
        status=doc["status"],
        settings=doc.get("settings") or {},
        started_at=doc["started_at"].astimezone(UTC),
        ended_at=aware(doc.get("ended_at")),
    )
