"""Long-term memory with mem0 (AsyncMemory, embedded Qdrant on disk, telemetry off).

Search runs before every reply; the exchange is extracted in the background after it and
never delays a reply. The agent's memory tools add, update and delete single memories.
Every memory carries metadata `category` (the controlled vocabulary), `created_at`,
`updated_at` (UTC ISO 8601, written by mem0) and `source` (`tool` or `auto`). With
`MEMORY_TIERS` a second, "old" collection holds memories not updated for
`MEMORY_OLD_AFTER_DAYS`; search probes fresh first and old only when fresh gave fewer than
the limit; add and update always write to fresh."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from server.agent.memory import search as lean
from server.agent.memory import tiers
from server.agent.memory.hits import (
    MemoryHit,
    MemoryNotFound,
    MemoryUnavailable,
    Tier,
    hit_of,
    items_of,
)
from server.agent.memory.mem0_setup import (
    make_embedder,
    mem0_config,
    probe_chroma,
    probe_pgvector,
)
from server.agent.memory.metering import CountUsage, MemoryMeter, embedding_usage, for_user
from server.agent.memory.vocabulary import AUTO_CATEGORY, VocabularyManager, normalise
from server.config import Settings
from server.logging import get_logger
from server.providers.embeddings import Embedder
from server.store.base import Store, utcnow

log = get_logger(__name__)


def _error(e: Exception) -> str:
    return f"{type(e).__name__}: {e}"


class LongTermMemory:
    """mem0 behind a small interface. ``status`` is ready, disabled, loading or error."""

    def __init__(
        self, settings: Settings, store: Store | None = None, count_usage: CountUsage | None = None
    ) -> None:
        """``store`` holds the controlled vocabulary; without one (tools, scripts that only
        read) categories are only normalised. ``count_usage`` gets mem0's own model calls
        (extraction, embeddings) as usage counters of the user they were for."""
        self.settings = settings
        self.meter = MemoryMeter(count_usage) if count_usage is not None else None
        self.vocabulary = (
            VocabularyManager(store, settings.memory_vocabulary_max) if store is not None else None
        )
        self._tiers: dict[Tier, Any] = {}
        self._calls: dict[Tier, lean.StoreCalls] = {}  # where each tier's searches run
        self.embedder: Embedder | None = None
        self._pending: set[asyncio.Task[None]] = set()
        # mem0's add holds a worker thread for a whole LLM call: cap them so searches (which
        # come before every reply) never queue behind a pile of background saves.
        self._adds = asyncio.Semaphore(settings.memory_max_concurrent_adds)
        self._moves = asyncio.Lock()  # cleanup and tier-crossing updates, one at a time
        if not settings.memory_enabled:
            self.status, self.detail = "disabled", "MEMORY_ENABLED is false"
        elif not settings.embedder_configured:
            self.status, self.detail = "disabled", "no embedding endpoint configured"
        else:
            self.status, self.detail = "loading", ""

    @property
    def enabled(self) -> bool:
        return "fresh" in self._tiers

    @property
    def tiered(self) -> bool:
        return "old" in self._tiers

    @property
    def remote(self) -> bool:
        """Whether the vectors live on a server (pgvector, Chroma, a Qdrant url) that can be
        down for a while and come back, so a failed start is worth trying again."""
        s = self.settings
        return s.memory_vector_store in ("pgvector", "chroma") or bool(s.memory_qdrant_url)

    async def start(self) -> None:
        if self.vocabulary is not None:
            await self.vocabulary.start()
        if self.status != "loading":
            return
        data: Path = self.settings.data_dir
        os.environ["MEM0_TELEMETRY"] = "False"
        os.environ.setdefault("MEM0_DIR", str((data / "mem0").resolve()))
        await self._open()

    async def _open(self) -> bool:
        """Build every tier; ready only once the vector store has answered. The tiers are
        published together at the end, so a search never sees half of them."""
        built: dict[Tier, Any] = {}
        try:
            # mem0 opens pgvector's pool without waiting, and Chroma's client waits long:
            # ask the server itself first
            timeout_s = self.settings.memory_search_timeout_s
            if self.settings.memory_vector_store == "pgvector":
                await asyncio.to_thread(probe_pgvector, self.settings, timeout_s)
            elif self.settings.memory_vector_store == "chroma":
                await asyncio.to_thread(probe_chroma, self.settings, timeout_s)
            built["fresh"] = await asyncio.to_thread(self._build, "fresh")
            # tier moves copy Qdrant points: with pgvector or Chroma there is one tier
            if self.settings.memory_tiers and self.settings.memory_vector_store == "qdrant":
                built["old"] = await asyncio.to_thread(self._build, "old")
        except Exception as e:  # mem0 raises many kinds; memory is optional
            self.status, self.detail = "error", _first_line(e)
            log.warning("memory_unavailable", error=self.detail)
            await _close_all(built)
            return False
        if self.meter is not None:
            for mem in built.values():
                self.meter.attach(mem)
        embedded = self.settings.memory_vector_store == "qdrant"
        embedded = embedded and not self.settings.memory_qdrant_url
        self._calls = {t: lean.StoreCalls(m, embedded) for t, m in built.items()}
        self.embedder = make_embedder(self.settings)
        self._tiers = built
        self.status, self.detail = "ready", ""
        return True

    async def reopen(
        self, on_change: Callable[[], None], first_s: float = 1.0, max_s: float = 30.0
    ) -> None:
        """Memory could not start because its vector server did not answer: try again in
        the background, waiting 1 s, 2 s, 4 s ... at most ``max_s`` between tries, until
        it does. ``on_change`` is told of every new status and detail (the why, and when
        the next try is)."""
        delay = first_s
        while self.status == "error":
            self.detail = f"{self.detail}; trying again in {delay:g} s"
            on_change()
            await asyncio.sleep(delay)
            if await self._open():
                log.info("memory_ready", after="the vector store answered again")
            delay = min(delay * 2, max_s)
        on_change()

    def _build(self, tier: Tier) -> Any:
        from mem0 import AsyncMemory
        from mem0.configs.base import MemoryConfig

        (self.settings.data_dir / "mem0").mkdir(parents=True, exist_ok=True)
        return AsyncMemory(MemoryConfig(**mem0_config(self.settings, tier)))

    def _need(self) -> Any:
        if "fresh" not in self._tiers:
            raise MemoryUnavailable(f"Long-term memory is not available ({self.detail}).")
        return self._tiers["fresh"]

    # --- reading ------------------------------------------------------------------------
    async def search(
        self, user_id: str, query: str, limit: int | None = None, category: str | None = None
    ) -> list[MemoryHit]:
        """Sequential probing: fresh first, old only when fresh gave fewer than ``limit``;
        one query embedding for both. mem0's search and ranking without its extra hops
        (server/agent/memory/search.py). Errors are logged and give no memories (a reply
        never fails for memory)."""
        if not self.enabled or not query.strip() or self.embedder is None:
            return []
        limit = limit or self.settings.memory_search_limit
        filters: dict[str, Any] = {"user_id": user_id}
        if category:
            filters["category"] = category
        out: list[MemoryHit] = []
        timeout_s = self.settings.memory_search_timeout_s
        query = query.strip()  # as mem0 trims it
        try:  # one budget for both tiers: a hanging embedding endpoint never holds a reply
            async with asyncio.timeout(timeout_s):
                try:
                    embedded = await self.embedder.embed(query)
                except Exception as e:
                    log.warning("memory_search_failed", tier="fresh", error=_error(e))
                    return []
                if embedded.usage is not None and self.meter is not None:
                    self.meter.record(user_id, embedding_usage(embedded.usage))
                for tier in ("fresh", "old"):
                    mem = self._tiers.get(tier)
                    if mem is None or len(out) >= limit:
                        break
                    calls, left = self._calls[tier], limit - len(out)
                    try:
                        items = await lean.search(mem, calls, query, embedded.vector, filters, left)
                    except Exception as e:
                        log.warning("memory_search_failed", tier=tier, error=_error(e))
                        continue
                    out += [hit_of(i, tier) for i in items if i.get("memory")]
        except TimeoutError:
            log.warning("memory_search_timeout", timeout_s=timeout_s, found=len(out))
        return out

    async def find(self, user_id: str, memory_id: str) -> MemoryHit:
        """This user's memory with this id, in whichever tier, else MemoryNotFound."""
        self._need()
        for tier, mem in self._tiers.items():
            if self.settings.memory_vector_store == "qdrant":
                if not await asyncio.to_thread(tiers.has_point, mem, memory_id):
                    continue
            elif not _is_uuid(memory_id):  # pgvector's id column is a UUID; mem0's ids are
                continue
            item = await mem.get(memory_id)
            if item and item.get("user_id") == user_id:
                return hit_of(item, tier)
        raise MemoryNotFound(memory_id)

    async def list(self, user_id: str, limit: int) -> list[MemoryHit]:
        """The user's memories, most recently updated first, both tiers."""
        self._need()
        out: list[MemoryHit] = []
        for tier, mem in self._tiers.items():
            res = await mem.get_all(filters={"user_id": user_id}, top_k=limit)
            out += [hit_of(i, tier) for i in items_of(res)]
        out.sort(key=lambda h: h.updated_at or "", reverse=True)
        return out[:limit]

    # --- writing ------------------------------------------------------------------------
    async def add(
        self,
        user_id: str,
        content: str,
        category: str,
        source: str = "tool",
        created_at: datetime | None = None,
    ) -> str:
        """Store one memory as given (no LLM extraction) in fresh; return its id.
        ``created_at`` keeps an imported memory's original time (it is also its updated_at)."""
        mem = self._need()
        cat = await self._category(category)
        meta: dict[str, Any] = {"category": cat, "source": source}
        if created_at is not None:
            meta["created_at"] = created_at.isoformat()
        with for_user(user_id):
            res = await mem.add(
                [{"role": "user", "content": content}], user_id=user_id, metadata=meta, infer=False
            )
        items = items_of(res)
        if not items:
            raise MemoryUnavailable("mem0 stored nothing.")
        return str(items[0]["id"])

    async def update(
        self, user_id: str, memory_id: str, content: str, category: str | None = None
    ) -> MemoryHit:
        """Rewrite one memory in fresh (an old one moves back to fresh, keeping its id)."""
        mem = self._need()
        hit = await self.find(user_id, memory_id)
        meta: dict[str, Any] = {"source": "tool"}
        if category is not None:
            meta["category"] = await self._category(category)
        if hit.tier == "old":
            async with self._moves:
                await asyncio.to_thread(tiers.move_points, self._tiers["old"], mem, [memory_id])
        with for_user(user_id):
            await mem.update(memory_id, text=content, metadata=meta)
        return await self.find(user_id, memory_id)

    async def _category(self, term: str) -> str:
        if self.vocabulary is None:
            return normalise(term)
        (cat,) = await self.vocabulary.ensure_categories([term])
        return cat

    async def delete(self, user_id: str, memory_id: str) -> MemoryHit:
        hit = await self.find(user_id, memory_id)
        await self._tiers[hit.tier].delete(memory_id)
        return hit

    async def delete_all(self, user_id: str) -> int:
        """Erase every memory of this user in both tiers; return how many there were."""
        self._need()
        n = 0
        for mem in self._tiers.values():
            res = await mem.get_all(filters={"user_id": user_id}, top_k=100_000)
            n += len(items_of(res))
            await mem.delete_all(user_id=user_id)
        return n

    async def move_older_than(self, days: float, now: datetime | None = None) -> int:
        """The cleanup job: move memories not updated for ``days`` from fresh to old."""
        if not self.tiered:
            raise MemoryUnavailable("Memory tiers are off (MEMORY_TIERS=false).")
        cutoff = (now or utcnow()) - timedelta(days=days)
        fresh, old = self._tiers["fresh"], self._tiers["old"]
        async with self._moves:
            ids = await asyncio.to_thread(tiers.ids_updated_before, fresh, cutoff)
            moved = await asyncio.to_thread(tiers.move_points, fresh, old, ids)
        log.info("memory_cleanup", moved=moved, days=days)
        return moved

    # --- background extraction ----------------------------------------------------------
    def add_background(self, user_id: str, messages: list[dict[str, str]]) -> None:
        """Extract and store an exchange without making anyone wait for it."""
        if not self.enabled:
            return
        task = asyncio.create_task(self._add(user_id, messages))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _add(self, user_id: str, messages: list[dict[str, str]]) -> None:
        try:
            async with self._adds, asyncio.timeout(self.settings.memory_add_timeout_s):
                with for_user(user_id):
                    await self._tiers["fresh"].add(
                        messages,
                        user_id=user_id,
                        metadata={"category": AUTO_CATEGORY, "source": "auto"},
                    )
        except TimeoutError:
            log.warning("memory_add_timeout", timeout_s=self.settings.memory_add_timeout_s)
        except Exception as e:
            log.warning("memory_add_failed", error=f"{type(e).__name__}: {e}")

    async def drain(self, timeout_s: float = 10.0) -> None:
        """Wait for background adds (tests, shutdown)."""
        if self._pending:
            await asyncio.wait(set(self._pending), timeout=timeout_s)

    async def close(self) -> None:
        await self.drain()
        await self._close_tiers()

    async def _close_tiers(self) -> None:
        if self.embedder is not None:
            await self.embedder.aclose()
            self.embedder = None
        tiers_, self._tiers, self._calls = self._tiers, {}, {}
        await _close_all(tiers_)


async def _close_all(tiers_: dict[Tier, Any]) -> None:
    """Close each tier's vector store connection: a Qdrant client, or pgvector's pool
    (which would otherwise go on trying to connect in its own thread)."""
    for mem in tiers_.values():
        store = getattr(mem, "vector_store", None)
        for name in ("client", "connection_pool"):
            conn = getattr(store, name, None)
            if conn is not None and hasattr(conn, "close"):
                await asyncio.to_thread(conn.close)


def _first_line(e: Exception) -> str:
    """An error in one line: psycopg adds hints on lines of their own."""
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0]}" if text else type(e).__name__


def _is_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True
