"""Fixtures: every contract test runs against SQLite and against MongoDB (wire server).

No mongod exists on these machines, so the MongoDB adapter talks real wire protocol to
mongoeco's in-memory proxy server on loopback, started here (mongoeco's own pytest plugin
refuses pymongo 4.20).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from mongoeco.engines import MemoryEngine
from mongoeco.wire import AsyncMongoEcoProxyServer

from server.store import MongoStore, SQLiteStore, Store, new_id


@pytest.fixture(scope="session")
async def mongo_uri() -> AsyncIterator[str]:
    """One in-memory MongoDB-wire server for the whole run; tests use fresh databases."""
    server = AsyncMongoEcoProxyServer(engine=MemoryEngine(), host="127.0.0.1", port=0)
    address = await server.start()
    try:
        yield address.uri
    finally:
        await server.close()


@pytest.fixture(params=["sqlite", "mongo"])
async def store(
    request: pytest.FixtureRequest, tmp_path: Path, mongo_uri: str
) -> AsyncIterator[Store]:
    """An opened store of each kind, empty, closed after the test.

    ``mongo_uri`` is requested directly (not via getfixturevalue, which cannot set up an
    async fixture from inside another one); starting the wire server costs milliseconds.
    """
    s: Store
    if request.param == "sqlite":
        s = SQLiteStore(tmp_path)
    else:
        s = MongoStore(mongo_uri, f"t_{new_id()}")
    await s.open()
    try:
        yield s
    finally:
        await s.close()
