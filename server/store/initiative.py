"""Approvals (a consequential tool call waiting for the user's word) and proactive fires
(who spoke first, when, and why): the SQLite adapter's part (MongoDB's is in
initiative_mongo.py, so SQLite servers never import pymongo).

Mixins kept here so the adapters' own files do not grow. A proactive fire's ``key`` is
unique per user: a scheduled trigger's key names (schedule, fire time), so when several
replicas or a restarted server race for it, the insert-or-ignore decides the one that speaks.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from server.store.base import (
    ApprovalRecord,
    ApprovalStatus,
    ProactiveFireRecord,
    utcnow,
)

SQLITE_SCHEMA = """
CREATE TABLE IF NOT EXISTS approvals (
    id           TEXT NOT NULL,
    user_id      TEXT NOT NULL,
    session_id   TEXT NOT NULL,
    name         TEXT NOT NULL,
    arguments    TEXT NOT NULL,
    description  TEXT NOT NULL,
    status       TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    expires_at   TEXT NOT NULL,
    decided_at   TEXT,
    decided_arguments TEXT,
    message      TEXT,
    carried_by   TEXT,
    PRIMARY KEY (user_id, id)
);
CREATE INDEX IF NOT EXISTS approvals_user_created ON approvals (user_id, created_at);
CREATE TABLE IF NOT EXISTS proactive_fires (
    user_id     TEXT NOT NULL,
    key         TEXT NOT NULL,
    trigger     TEXT NOT NULL,
    session_id  TEXT,
    fired_at    TEXT NOT NULL,
    PRIMARY KEY (user_id, key)
);
CREATE INDEX IF NOT EXISTS proactive_fires_user_fired ON proactive_fires (user_id, fired_at);
"""

DECIDED = ("approved", "edited", "rejected", "expired")
APPROVALS_ADDED = {"carried_by": "TEXT"}  # which replica carries out the decision


def _t(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _dt(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text).astimezone(UTC)


def _approval_row(r: Iterable[Any]) -> ApprovalRecord:
    (id_, user_id, session_id, name, args, desc, status, created, expires, decided, dargs, msg) = r
    return ApprovalRecord(
        id=id_,
        user_id=user_id,
        session_id=session_id,
        name=name,
        arguments=json.loads(args),
        description=desc,
        status=status,
        created_at=_dt(created),  # type: ignore[arg-type]
        expires_at=_dt(expires),  # type: ignore[arg-type]
        decided_at=_dt(decided),
        decided_arguments=None if dargs is None else json.loads(dargs),
        message=msg,
    )


_APPROVAL_COLS = (
    "id, user_id, session_id, name, arguments, description, status, created_at, expires_at, "
    "decided_at, decided_arguments, message"
)


class SQLiteInitiative:
    _write: Any  # SQLiteStore's serialised write transaction
    _fetch: Any

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
        now = utcnow()
        async with self._write() as conn:
            await conn.execute(
                f"INSERT INTO approvals ({_APPROVAL_COLS}) "
                "VALUES (?, ?, ?, ?, ?, ?, 'pending', ?, ?, NULL, NULL, NULL)",
                (
                    approval_id,
                    user_id,
                    session_id,
                    name,
                    json.dumps(arguments, ensure_ascii=False),
                    description,
                    _t(now),
                    _t(expires_at),
                ),
            )
        got = await self.get_approval(user_id, approval_id)
        assert got is not None
        return got

    async def get_approval(self, user_id: str, approval_id: str) -> ApprovalRecord | None:
        rows = await self._fetch(
            f"SELECT {_APPROVAL_COLS} FROM approvals WHERE user_id = ? AND id = ?",
            (user_id, approval_id),
        )
        return _approval_row(rows[0]) if rows else None

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
        async with self._write() as conn:
            cur = await conn.execute(
                "UPDATE approvals SET status = ?, decided_at = ?, decided_arguments = ?, "
                "message = ? WHERE user_id = ? AND id = ? AND status = 'pending'",
                (
                    status,
                    _t(utcnow()),
                    None if arguments is None else json.dumps(arguments, ensure_ascii=False),
                    message,
                    user_id,
                    approval_id,
                ),
            )
            changed = cur.rowcount
        return await self.get_approval(user_id, approval_id) if changed else None

    async def claim_approval(self, user_id: str, approval_id: str, owner: str) -> bool:
        async with self._write() as conn:
            cur = await conn.execute(
                "UPDATE approvals SET carried_by = ? WHERE user_id = ? AND id = ? "
                "AND status != 'pending' AND carried_by IS NULL",
                (owner, user_id, approval_id),
            )
            return bool(cur.rowcount)

    async def list_approvals(
        self,
        user_id: str,
        status: ApprovalStatus | None = None,
        session_id: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> list[ApprovalRecord]:
        sql = f"SELECT {_APPROVAL_COLS} FROM approvals WHERE user_id = ?"
        params: list[Any] = [user_id]
        if status is not None:
            sql += " AND status = ?"
            params.append(status)
        if session_id is not None:
            sql += " AND session_id = ?"
            params.append(session_id)
        sql += " ORDER BY created_at DESC LIMIT ? OFFSET ?"
        params += [limit, offset]
        return [_approval_row(r) for r in await self._fetch(sql, params)]

    async def claim_proactive_fire(
        self, user_id: str, key: str, trigger: str, session_id: str | None = None
    ) -> bool:
        async with self._write() as conn:
            cur = await conn.execute(
                "INSERT INTO proactive_fires (user_id, key, trigger, session_id, fired_at) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (user_id, key) DO NOTHING",
                (user_id, key, trigger, session_id, _t(utcnow())),
            )
            return bool(cur.rowcount)

    async def list_proactive_fires(
        self, user_id: str, limit: int = 50
    ) -> list[ProactiveFireRecord]:
        rows = await self._fetch(
            "SELECT user_id, key, trigger, session_id, fired_at FROM proactive_fires "
            "WHERE user_id = ? ORDER BY fired_at DESC LIMIT ?",
            (user_id, limit),
        )
        return [ProactiveFireRecord(r[0], r[1], r[2], r[3], _dt(r[4])) for r in rows]  # type: ignore[arg-type]
