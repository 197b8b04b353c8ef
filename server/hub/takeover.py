"""One live connection per session, across connections and replicas.

Resuming a session claims it (owner = this process's INSTANCE_ID, server/hub/liveness.py).
The connection that served it until then ends with a fatal ``session_taken_over`` error:
at once when it is in this process, and within SESSION_TAKEOVER_CHECK_S when it is on
another replica, which finds out with one store query per check for all its sessions."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Protocol

from server.hub.liveness import every, stop
from server.logging import get_logger
from server.store.base import Store

log = get_logger(__name__)
TAKEN_OVER_CLOSE = 4410
MESSAGE = "This session was resumed on another connection; it continues there."


class Served(Protocol):
    """What the watcher needs of a live session (hub/core.py's SessionCore)."""

    @property
    def session_id(self) -> str: ...

    async def taken_over(self, code: str, message: str, close_code: int) -> None: ...


class Takeovers:
    def __init__(self, store: Store, owner: str, check_s: float) -> None:
        self.store = store
        self.owner = owner
        self.check_s = check_s
        self.live: dict[str, Served] = {}
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self.check_s > 0:
            self._task = asyncio.create_task(every(self.check_s, self.check, "takeover_failed"))

    @contextlib.asynccontextmanager
    async def serving(self, session: Served) -> AsyncIterator[None]:
        """While the block runs this connection serves the session; an older connection to
        it in this process is ended now."""
        await self._claim(session)
        try:
            yield
        finally:
            sid = session.session_id  # a DMP connection may have switched sessions since
            if self.live.get(sid) is session:
                del self.live[sid]

    async def end_here(self, session_id: str) -> None:
        """A newer connection is resuming this session: an older one in this process ends
        now (before the newer one reads the session's history)."""
        if (older := self.live.pop(session_id, None)) is not None:
            await older.taken_over("session_taken_over", MESSAGE, TAKEN_OVER_CLOSE)

    async def switched(self, session: Served, previous: str) -> None:
        """A connection that names its session per message (DMP) moved from ``previous`` to
        ``session.session_id``: watch the new one (ending an older connection to it here)."""
        if self.live.get(previous) is not session:
            return  # not served through ``serving`` (no watch)
        del self.live[previous]
        await self._claim(session)

    async def _claim(self, session: Served) -> None:
        sid = session.session_id
        if (older := self.live.get(sid)) is not None and older is not session:
            await older.taken_over("session_taken_over", MESSAGE, TAKEN_OVER_CLOSE)
        self.live[sid] = session

    async def check(self) -> list[str]:
        """End the sessions another replica claimed since; their ids."""
        if not self.live:
            return []
        moved = await self.store.sessions_owned_elsewhere(list(self.live), self.owner)
        for sid in moved:
            if (session := self.live.pop(sid, None)) is not None:
                log.info("session_taken_over", session_id=sid)
                await session.taken_over("session_taken_over", MESSAGE, TAKEN_OVER_CLOSE)
        return moved

    async def close(self) -> None:
        await stop(self._task)
