"""Is an exception the store failing (MongoDB unreachable, the SQLite file unusable)? Then
the client is told its database did not answer (database_unavailable), which it can retry,
instead of an unexplained "server error"."""

from __future__ import annotations

import sqlite3
import sys

NO_DATABASE = "the server's database did not answer; try again shortly."


def store_failure(e: BaseException) -> bool:
    """True when ``e``, or what it was raised from, is a MongoDB or SQLite error."""
    mongo = sys.modules.get("pymongo.errors")  # imported only with MongoDB configured
    seen: list[BaseException] = []
    cur: BaseException | None = e
    while cur is not None and cur not in seen:
        if isinstance(cur, sqlite3.Error) or (
            mongo is not None and isinstance(cur, mongo.PyMongoError)
        ):
            return True
        seen.append(cur)
        cur = cur.__cause__ or cur.__context__
    return False
