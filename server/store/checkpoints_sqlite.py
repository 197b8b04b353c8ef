"""LangGraph checkpoints in SQLite, one thread hop per operation.

Why not AsyncSqliteSaver: on aiosqlite every cursor call is a hop to its thread and back
(about 15 per turn: cursor, execute, fetchone, execute, fetchall, close, commit ...), and
under load each hop waits its turn on a busy event loop, before the LLM request (the
checkpoint is read first) and after it. This is LangGraph's own SqliteSaver (same schema,
same serializer, same file) whose async methods run the whole sync operation on one
dedicated thread, so each is a single hop."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
)
from langgraph.checkpoint.sqlite import SqliteSaver

from server.store.checkpoint_memo import CheckpointMemo


class OneHopSqliteSaver(SqliteSaver):
    def __init__(self, path: Path) -> None:
        # one thread owns the connection: every operation runs there, in order
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="checkpoints")
        conn = self._pool.submit(_connect, path).result()
        # the checkpoint a turn reads is mostly the one the turn before wrote: not decoded
        # again (server/store/checkpoint_memo.py)
        super().__init__(conn, serde=CheckpointMemo())
        self._pool.submit(self.setup).result()

    async def _run[T](self, fn: Callable[..., T], *args: Any, **kw: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, partial(fn, *args, **kw))

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        return await self._run(self.get_tuple, config)

    async def alist(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        def listed() -> list[CheckpointTuple]:
            return list(self.list(config, filter=filter, before=before, limit=limit))

        for item in await self._run(listed):
            yield item

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        return await self._run(self.put, config, checkpoint, metadata, new_versions)

    async def aput_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        await self._run(self.put_writes, config, writes, task_id, task_path)

    async def adelete_thread(self, thread_id: str) -> None:
        await self._run(self.delete_thread, thread_id)

    def drop_checkpoints(self, thread_id: str, checkpoint_ids: Sequence[str]) -> None:
        """Delete these checkpoints of a thread and their writes (a discarded run's:
        server/agent/graph.py ``forget_run``)."""
        marks = ",".join("?" * len(checkpoint_ids))
        where = f"thread_id = ? AND checkpoint_id IN ({marks})"
        with self.cursor() as cur:
            cur.execute(f"DELETE FROM checkpoints WHERE {where}", (thread_id, *checkpoint_ids))
            cur.execute(f"DELETE FROM writes WHERE {where}", (thread_id, *checkpoint_ids))

    async def adrop_checkpoints(self, thread_id: str, checkpoint_ids: Sequence[str]) -> None:
        await self._run(self.drop_checkpoints, thread_id, checkpoint_ids)

    async def aget_delta_channel_history(
        self, *, config: RunnableConfig, channels: Sequence[str]
    ) -> Mapping[str, Any]:
        return await self._run(self.get_delta_channel_history, config=config, channels=channels)

    async def aclose(self) -> None:
        await self._run(self.conn.close)
        self._pool.shutdown(wait=False)


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, check_same_thread=False)
    conn.execute("PRAGMA busy_timeout=5000")
    # WAL + NORMAL survives app crashes (kill -9); a power loss may drop the last
    # checkpoints, which history_sync rebuilds from the (FULL) store on resume.
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    return conn
