"""How SQLiteStore and its per-area mixins encode values: times as fixed-width UTC text,
JSON as compact text, and session rows."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from server.store.base import SessionRecord

SESSION_COLS = "id, user_id, persona_id, thread_id, status, settings, started_at, ended_at"


def to_db_time(dt: datetime) -> str:
    """Fixed-width ISO UTC text, so string order equals time order in SQL."""
    if dt.tzinfo is None:  # naive values are taken to be UTC already
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def from_db_time(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def session_row(row: Iterable[Any]) -> SessionRecord:
    sid, user_id, persona_id, thread_id, status, settings, started, ended = row
    return SessionRecord(
        id=sid,
        user_id=user_id,
        persona_id=persona_id,
        thread_id=thread_id,
        status=status,
        settings=json.loads(settings),
        started_at=from_db_time(started),
        ended_at=from_db_time(ended) if ended is not None else None,
    )
