"""Storage: one async contract (``Store``), an embedded SQLite adapter and a MongoDB one."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from server.store.base import (
    MessageRecord,
    Role,
    Sample,
    SessionRecord,
    SessionStatus,
    Store,
    new_id,
    utcnow,
)
from server.store.sqlite import SQLiteStore

if TYPE_CHECKING:
    from server.store.mongo import MongoStore

__all__ = [
    "MessageRecord",
    "MongoStore",
    "Role",
    "SQLiteStore",
    "Sample",
    "SessionRecord",
    "SessionStatus",
    "Store",
    "make_store",
    "new_id",
    "utcnow",
]


def __getattr__(name: str) -> Any:
    """``MongoStore`` on first use: pymongo costs an embedded-SQLite server ~13 MB."""
    if name == "MongoStore":
        from server.store.mongo import MongoStore

        return MongoStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def make_store(
    *,
    data_dir: Path,
    mongodb_uri: str | None,
    mongodb_db: str = "desktopmate",
    sqlite_synchronous: Literal["FULL", "NORMAL"] = "FULL",
    mongodb_timeout_s: float = 5.0,
) -> Store:
    """MongoDB when a URI is configured (shared server deployments), else embedded SQLite.

    The store is returned unopened: the caller owns its lifecycle (``await store.open()``
    at startup, ``await store.close()`` at shutdown).
    """
    if mongodb_uri:
        from server.store.mongo import MongoStore

        return MongoStore(mongodb_uri, mongodb_db, timeout_s=mongodb_timeout_s)
    return SQLiteStore(Path(data_dir), sqlite_synchronous)
