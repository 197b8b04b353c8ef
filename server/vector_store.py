"""The vector store settings checked before anything starts: whether the configured store
can work at all, and where a Chroma server is. Pure functions of Settings, light to import
(the command line asks them before the server's libraries load)."""

from __future__ import annotations

import importlib.util
from urllib.parse import urlsplit

from server.config import Settings, secret


def vector_store_problem(settings: Settings) -> str | None:
    """Why the configured vector store cannot work at all (a setting to fix, so start-up
    refuses it, exit 2), or None. Asked only with memory on."""
    if settings.memory_vector_store == "pgvector" and not secret(settings.memory_pgvector_url):
        return "MEMORY_VECTOR_STORE=pgvector needs MEMORY_PGVECTOR_URL"
    if settings.memory_vector_store == "chroma":
        try:
            chroma_address(settings)
        except ValueError as e:
            return str(e)
        if importlib.util.find_spec("chromadb") is None:
            return (
                "MEMORY_VECTOR_STORE=chroma needs the chromadb package: uv sync --extra chroma "
                "(pip: desktopmate-plus[chroma])"
            )
    return None


def chroma_address(settings: Settings) -> tuple[str, int]:
    """MEMORY_CHROMA_URL's host and port (8000, Chroma's own, when it names none). mem0's
    Chroma store speaks plain HTTP only, so an https URL is refused rather than sent in the
    clear."""
    url = settings.memory_chroma_url
    if not url:
        raise ValueError("MEMORY_VECTOR_STORE=chroma needs MEMORY_CHROMA_URL")
    parts = urlsplit(url)
    if parts.scheme != "http":
        raise ValueError(
            "MEMORY_CHROMA_URL must be an http:// URL: mem0's Chroma store has no TLS "
            "(keep the Chroma server on the replicas' private network)"
        )
    return parts.hostname or "localhost", parts.port or 8000
