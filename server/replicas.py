"""Many replicas: what a server needs before it may share users with other servers.

With REPLICA_MODE=multi every replica must reach the same stores. Embedded SQLite and
embedded Qdrant live in one machine's DATA_DIR, so a second replica would silently see
other data: start-up is refused with what to set instead."""

from __future__ import annotations

from server.config import Settings, secret
from server.vector_store import vector_store_problem


def replica_refusals(settings: Settings) -> list[str]:
    """Why this configuration cannot run as one of many replicas (empty: it can)."""
    if settings.replica_mode != "multi":
        return []
    problems = []
    if not secret(settings.mongodb_uri):
        problems.append(
            "the store is embedded SQLite in DATA_DIR: set MONGODB_URI to a MongoDB all "
            "replicas share (sessions, history and LangGraph checkpoints live there)"
        )
    memory_on = settings.memory_enabled and settings.embedder_configured
    if memory_on and settings.memory_vector_store == "qdrant" and not settings.memory_qdrant_url:
        problems.append(
            "long-term memory uses embedded Qdrant in DATA_DIR: set MEMORY_QDRANT_URL to a "
            "Qdrant server, MEMORY_VECTOR_STORE=pgvector with MEMORY_PGVECTOR_URL, "
            "MEMORY_VECTOR_STORE=chroma with MEMORY_CHROMA_URL, or MEMORY_ENABLED=false"
        )
    if memory_on and (problem := vector_store_problem(settings)):
        problems.append(problem)
    return problems


def replica_refusal(settings: Settings) -> str | None:
    """One message for the console, or None."""
    problems = replica_refusals(settings)
    if not problems:
        return None
    lines = "\n".join(f"  - {p}" for p in problems)
    return f"Refusing to start with REPLICA_MODE=multi:\n{lines}"
