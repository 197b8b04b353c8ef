"""Who serves each live session, and what happens to live sessions when a server dies.

A WebSocket session is *claimed* by the process serving it (owner = INSTANCE_ID, plus a
heartbeat time). A process killed without shutting down (kill -9, power loss, OOM) leaves
its sessions ``active`` in the store. They are recovered as ``interrupted``:

- at start-up, a process recovers the sessions it owned itself (its previous run): with
  one process per database that is every session left active by a crash;
- while running, every ``SESSION_HEARTBEAT_S`` each process refreshes the heartbeat of the
  sessions it serves, and recovers those of any owner that missed three heartbeats (a
  replica that never came back). See docs/protocol.md, "Crash recovery".

Replicas must not share an INSTANCE_ID (each would recover and never take over the other's
sessions): every heartbeat also records this run's token under it, and a token another
process wrote since is reported (``shared_with``, an error in the log, /health/details).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from server.logging import get_logger
from server.store.base import Store, utcnow

log = get_logger(__name__)
MISSED_HEARTBEATS = 3


def instance_id(configured: str) -> str:
    """INSTANCE_ID, or this machine's host name (stable across restarts of one machine or
    container, distinct between replicas)."""
    return configured.strip() or socket.gethostname() or "local"


class SessionLiveness:
    def __init__(self, store: Store, owner: str, heartbeat_s: float) -> None:
        self.store = store
        self.owner = owner
        self.heartbeat_s = heartbeat_s
        self.token = uuid.uuid4().hex  # this run of the process
        self.shared = False  # another live process runs with our INSTANCE_ID
        self._task: asyncio.Task[None] | None = None

    def _stale(self) -> datetime:
        """Heartbeats older than this belong to a dead owner."""
        return utcnow() - timedelta(seconds=self.heartbeat_s * MISSED_HEARTBEATS)

    async def start(self) -> list[str]:
        """Recover what our previous run left open (and long-dead replicas' sessions), then
        keep heartbeating. Returns the recovered session ids."""
        # Without heartbeats nobody's heartbeat is stale: only our own sessions are ours.
        stale = self._stale() if self.heartbeat_s > 0 else datetime(2000, 1, 1, tzinfo=UTC)
        await self.store.beat_instance(self.owner, self.token)  # a token before: our last run
        recovered = await self.store.recover_sessions(stale, owner=self.owner)
        if recovered:
            log.warning("sessions_recovered", count=len(recovered), owner=self.owner)
        if self.heartbeat_s > 0:
            self._task = asyncio.create_task(self._beat())
        return recovered

    async def _beat(self) -> None:
        await every(self.heartbeat_s, self._beat_once, "session_heartbeat_failed")

    async def _beat_once(self) -> None:
        self.shared = await self.store.beat_instance(self.owner, self.token) is not None
        if self.shared:
            log.error(
                "instance_id_shared",
                instance_id=self.owner,
                message=f"Another live server process runs with INSTANCE_ID={self.owner!r}: "
                "each replica needs its own (sessions are recovered and taken over by it), "
                "so give every replica a distinct INSTANCE_ID or leave it unset.",
            )
        await self.store.heartbeat_sessions(self.owner)
        if gone := await self.store.recover_sessions(self._stale()):
            log.warning("sessions_recovered", count=len(gone), reason="owner_silent")

    async def close(self) -> None:
        await stop(self._task)


async def every(interval_s: float, step: Callable[[], Awaitable[object]], failed: str) -> None:
    """Run ``step`` every ``interval_s`` until cancelled; a failing store is logged and
    tried again next time."""
    while True:
        await asyncio.sleep(interval_s)
        try:
            await step()
        except Exception as e:
            log.warning(failed, error=f"{type(e).__name__}: {e}")


async def stop(task: asyncio.Task[None] | None) -> None:
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
