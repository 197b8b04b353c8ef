"""Long-term memory with mem0 (AsyncMemory, telemetry off): embedded Qdrant on disk, a Qdrant
server or pgvector.

Search runs before every reply; adds run in the background and never delay a reply."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

from server.config import Settings, secret
from server.logging import get_logger

log = get_logger(__name__)


def mem0_config(settings: Settings) -> dict[str, Any]:
    data = settings.data_dir.resolve()
    llm_key = secret(settings.llm_api_key) or "not-needed"
    return {
        "llm": {
            "provider": "openai",
            "config": {
                "model": settings.llm_model,
                "openai_base_url": settings.llm_base_url,
                "api_key": llm_key,
                "temperature": 0.0,
            },
        },
        "embedder": {
            "provider": "openai",
            "config": {
                "model": settings.embed_model,
                "openai_base_url": settings.embed_base_url or settings.llm_base_url,
                "api_key": secret(settings.embed_api_key) or llm_key,
                "embedding_dims": settings.embed_dims,
            },
        },
        "vector_store": vector_store_config(settings),
        "history_db_path": str(data / "mem0_history.db"),
    }


def vector_store_config(settings: Settings) -> dict[str, Any]:
    """Embedded Qdrant on disk (one machine), a Qdrant server or pgvector (many replicas)."""
    common = {
        "collection_name": settings.memory_collection,
        "embedding_model_dims": settings.embed_dims,
    }
    if settings.memory_vector_store == "pgvector":
        url = secret(settings.memory_pgvector_url)
        if not url:
            raise ValueError("MEMORY_VECTOR_STORE=pgvector needs MEMORY_PGVECTOR_URL")
        return {"provider": "pgvector", "config": {**common, "connection_string": url}}
    path = str(settings.data_dir.resolve() / "qdrant")
    if settings.memory_qdrant_url:
        # mem0 accepts a bare url only with an api key; with a url the path is never opened
        server = {"url": settings.memory_qdrant_url, "path": path}
        if key := secret(settings.memory_qdrant_api_key):
            server["api_key"] = key
        return {"provider": "qdrant", "config": {**common, **server}}
    return {"provider": "qdrant", "config": {**common, "path": path, "on_disk": True}}


class LongTermMemory:
    """mem0 behind a small interface. ``status`` is ready, disabled, loading or error."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._mem: Any = None
        self._pending: set[asyncio.Task[None]] = set()
        # mem0's add holds a worker thread for a whole LLM call: cap them so searches (which
        # come before every reply) never queue behind a pile of background saves.
        self._adds = asyncio.Semaphore(settings.memory_max_concurrent_adds)
        if not settings.memory_enabled:
            self.status, self.detail = "disabled", "MEMORY_ENABLED is false"
        elif not settings.embedder_configured:
            self.status, self.detail = "disabled", "no embedding endpoint configured"
        else:
            self.status, self.detail = "loading", ""

    @property
    def enabled(self) -> bool:
        return self._mem is not None

    async def start(self) -> None:
        if self.status != "loading":
            return
        data: Path = self.settings.data_dir
        os.environ["MEM0_TELEMETRY"] = "False"
        os.environ.setdefault("MEM0_DIR", str((data / "mem0").resolve()))
        try:
            self._mem = await asyncio.to_thread(self._build)
            self.status = "ready"
        except Exception as e:  # mem0 raises many kinds; memory is optional
            self.status, self.detail = "error", f"{type(e).__name__}: {e}"
            log.warning("memory_unavailable", error=self.detail)

    def _build(self) -> Any:
        from mem0 import AsyncMemory
        from mem0.configs.base import MemoryConfig

        (self.settings.data_dir / "mem0").mkdir(parents=True, exist_ok=True)
        return AsyncMemory(MemoryConfig(**mem0_config(self.settings)))

    async def search(self, user_id: str, query: str) -> list[str]:
        if not self._mem or not query.strip():
            return []
        try:  # the embedding endpoint may hang: the reply goes on without memories
            async with asyncio.timeout(self.settings.memory_search_timeout_s):
                res = await self._mem.search(
                    query, filters={"user_id": user_id}, top_k=self.settings.memory_search_limit
                )
        except TimeoutError:
            log.warning("memory_search_timeout", timeout_s=self.settings.memory_search_timeout_s)
            return []
        except Exception as e:
            log.warning("memory_search_failed", error=f"{type(e).__name__}: {e}")
            return []
        items = res.get("results", []) if isinstance(res, dict) else res
        return [str(i.get("memory", "")) for i in items if i.get("memory")]

    def add_background(self, user_id: str, messages: list[dict[str, str]]) -> None:
        """Store an exchange without making anyone wait for it."""
        if not self._mem:
            return
        task = asyncio.create_task(self._add(user_id, messages))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _add(self, user_id: str, messages: list[dict[str, str]]) -> None:
        try:
            async with self._adds, asyncio.timeout(self.settings.memory_add_timeout_s):
                await self._mem.add(messages, user_id=user_id)
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
        if self._mem is not None:
            client = getattr(getattr(self._mem, "vector_store", None), "client", None)
            if client is not None:
                await asyncio.to_thread(client.close)
            self._mem = None
