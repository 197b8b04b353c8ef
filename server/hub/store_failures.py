"""Is an exception the store failing (MongoDB unreachable, the SQLite file unusable)? Then
the client is told its database did not answer (database_unavailable), which it can retry,
instead of an unexplained "server error"."""

from __future__ import annotations

import sqlite3
import sys

from server.providers.failures import causes

NO_DATABASE = "the server's database did not answer; try again shortly."


def store_failure(e: BaseException) -> bool:
    """True when ``e``, or what it was raised from, is a MongoDB or SQLite error."""
    mongo = sys.modules.get("pymongo.errors")  # imported only with MongoDB configured
    kinds = (sqlite3.Error, mongo.PyMongoError) if mongo is not None else (sqlite3.Error,)
    return any(isinstance(c, kinds) for c in causes(e))
