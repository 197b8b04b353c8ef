"""Settings that name an HTTP service (STT_BASE_URL, MEMORY_QDRANT_URL): a value that cannot
be an HTTP(S) URL is a bad setting at start-up (exit 2), not an "unreachable" server found
only when the first user speaks, or a memory module that quietly fails."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlsplit

from pydantic import AfterValidator

EXPECTED_URL = "expected http://host:port/path or https://host/path"


def http_url_problem(url: str) -> str | None:
    """Why ``url`` cannot be an HTTP(S) service's address, or None. The value itself is
    never repeated: a user, password or key may ride in it."""
    try:
        parts = urlsplit(url.strip())
        host, _port = parts.hostname, parts.port  # .port raises on a port out of range
    except ValueError:
        return f"is not a valid URL (its host or port); {EXPECTED_URL}"
    if parts.scheme.lower() not in ("http", "https"):
        return f"must start with http:// or https://; {EXPECTED_URL}"
    if not host:
        return f"names no host; {EXPECTED_URL}"
    return None


def _checked(url: str) -> str:
    if url and (problem := http_url_problem(url)):
        raise ValueError(problem)
    return url


HttpUrlSetting = Annotated[str, AfterValidator(_checked)]
