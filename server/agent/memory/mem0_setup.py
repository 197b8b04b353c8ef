"""How mem0 is built from our settings: its LLM, embedder and vector store (embedded
Qdrant per tier, a Qdrant server, pgvector or a Chroma server) and the query embedder the
lean search uses with the same endpoint. Pure functions of Settings, apart from the
wrapper so replicas and tests can check a configuration without starting memory, and the
probes that ask a vector server whether it is there."""

from __future__ import annotations

import os
from typing import Any

from server.agent.memory.hits import Tier
from server.config import Settings, secret
from server.providers.embeddings import Embedder
from server.vector_store import chroma_address

SUFFIX: dict[Tier, str] = {"fresh": "", "old": "_old"}  # old: collection <name>_old


def mem0_config(settings: Settings, tier: Tier = "fresh") -> dict[str, Any]:
    data = settings.data_dir.resolve()
    llm_key = secret(settings.llm_api_key) or "not-needed"
    suffix = "" if tier == "fresh" else "_old"
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
        "vector_store": vector_store_config(settings, tier),
        "history_db_path": str(data / f"mem0_history{suffix}.db"),
    }


def vector_store_config(settings: Settings, tier: Tier = "fresh") -> dict[str, Any]:
    """Embedded Qdrant on disk (one machine; each tier in its own folder, since an embedded
    folder admits one client), a Qdrant server, pgvector or a Chroma server (many
    replicas)."""
    common = {
        "collection_name": settings.memory_collection + SUFFIX[tier],
        "embedding_model_dims": settings.embed_dims,
    }
    if settings.memory_vector_store == "pgvector":
        url = secret(settings.memory_pgvector_url)
        if not url:
            raise ValueError("MEMORY_VECTOR_STORE=pgvector needs MEMORY_PGVECTOR_URL")
        index = {"hnsw": settings.memory_pgvector_index == "hnsw", "diskann": False}
        return {
            "provider": "pgvector",
            "config": {**common, "connection_string": url, **index},
        }
    if settings.memory_vector_store == "chroma":
        # mem0's Chroma store takes a host and a port (and no vector size: Chroma learns it)
        host, port = chroma_address(settings)
        return {
            "provider": "chroma",
            "config": {"collection_name": common["collection_name"], "host": host, "port": port},
        }
    path = str(settings.data_dir.resolve() / ("qdrant" + SUFFIX[tier]))
    if settings.memory_qdrant_url:
        # mem0 accepts a bare url only with an api key; with a url the path is never opened
        server = {"url": settings.memory_qdrant_url, "path": path}
        if key := secret(settings.memory_qdrant_api_key):
            server["api_key"] = key
        return {"provider": "qdrant", "config": {**common, **server}}
    return {"provider": "qdrant", "config": {**common, "path": path, "on_disk": True}}


def make_embedder(settings: Settings) -> Embedder:
    """The search's query embedder: the endpoint, key, model and size mem0's embedder uses."""
    cfg = mem0_config(settings)["embedder"]["config"]
    base = cfg["openai_base_url"] or os.getenv("OPENAI_BASE_URL") or "https://api.openai.com/v1"
    return Embedder(
        base,
        cfg["api_key"],
        cfg["model"],
        cfg["embedding_dims"],
        # a backstop: the search's own budget (MEMORY_SEARCH_TIMEOUT_S) ends it first, and
        # two timers firing together could hide that budget's cancellation
        timeout_s=settings.memory_search_timeout_s + 5,
    )


def probe_pgvector(settings: Settings, timeout_s: float) -> None:
    """One connection to the pgvector server, so memory is ready only once it answers
    (mem0's own pool connects later, in the background, and says nothing). Raises
    psycopg's error, which names what failed; blocking (run it in a thread)."""
    import psycopg

    url = secret(settings.memory_pgvector_url)
    if not url:
        raise ValueError("MEMORY_VECTOR_STORE=pgvector needs MEMORY_PGVECTOR_URL")
    with psycopg.connect(url, connect_timeout=max(1, round(timeout_s))) as conn:
        conn.execute("SELECT 1")


def probe_chroma(settings: Settings, timeout_s: float) -> None:
    """Ask the Chroma server's heartbeat, so memory is ready only once it answers and a down
    server fails within ``timeout_s`` (Chroma's client would wait much longer). Raises
    httpx's error; blocking (run it in a thread)."""
    import httpx

    host, port = chroma_address(settings)
    httpx.get(f"http://{host}:{port}/api/v2/heartbeat", timeout=timeout_s).raise_for_status()
