"""The fresh -> old cleanup job (seed 000's cleanup.py): `desktopmate memory cleanup
[--days N]` runs it once; the server runs it every `MEMORY_CLEANUP_INTERVAL_S`.

An embedded Qdrant folder admits one process: run the CLI while the server is stopped (the
server's own periodic job covers the running case)."""

from __future__ import annotations

import asyncio

from server.agent.memory.hits import MemoryUnavailable
from server.agent.memory.longterm import LongTermMemory
from server.config import Settings, secret
from server.logging import get_logger
from server.store import make_store

log = get_logger(__name__)


async def run_periodically(memory: LongTermMemory, days: float, interval_s: float) -> None:
    """Move old memories now and then every interval; errors are logged, never fatal."""
    while True:
        try:
            await memory.move_older_than(days)
        except MemoryUnavailable:
            return
        except Exception as e:
            log.warning("memory_cleanup_failed", error=f"{type(e).__name__}: {e}")
        await asyncio.sleep(interval_s)


async def cleanup_once(settings: Settings, days: float) -> int:
    """Open the store and memory like the server does, move, close. Returns how many moved."""
    store = make_store(
        data_dir=settings.data_dir,
        mongodb_uri=secret(settings.mongodb_uri),
        mongodb_db=settings.mongodb_db,
        mongodb_timeout_s=settings.mongodb_timeout_s,
    )
    await store.open()
    memory = LongTermMemory(settings, store)
    try:
        await memory.start()
        if memory.status != "ready":
            raise MemoryUnavailable(f"memory is {memory.status}: {memory.detail}")
        return await memory.move_older_than(days)
    finally:
        await memory.close()
        await store.close()
