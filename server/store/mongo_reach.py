"""Is MONGODB_URI's server there? Asked once before the server starts, so a wrong or down
MongoDB ends ``desktopmate serve`` after MONGODB_TIMEOUT_S with one line that says so,
instead of pymongo's 30 s wait and a traceback from inside the app's start-up."""

from __future__ import annotations

from pymongo import AsyncMongoClient
from pymongo.errors import ConfigurationError, InvalidURI, PyMongoError
from pymongo.uri_parser import parse_uri


def hosts(uri: str, timeout_s: float) -> str:
    """The URI's host:port list, never its user name or password (a mongodb+srv URI is
    resolved, within ``timeout_s``)."""
    nodes = parse_uri(uri, connect_timeout=timeout_s)["nodelist"]
    return ",".join(f"{h}:{p}" for h, p in nodes) or "?"


def invalid(uri: str, timeout_s: float) -> str | None:
    """Why MONGODB_URI is not a MongoDB URI at all (a setting to fix: no server to wait
    for), or None. A mongodb+srv name that does not resolve is left to ``unreachable``."""
    try:
        hosts(uri, timeout_s)
    except (InvalidURI, ValueError) as e:
        return f"MONGODB_URI is not a valid MongoDB URI: {e}"
    except ConfigurationError:
        return None
    return None


async def unreachable(uri: str, timeout_s: float) -> str | None:
    """Why the server cannot use this MongoDB (a message for the console), or None."""
    try:
        where = hosts(uri, timeout_s)
    except (InvalidURI, ConfigurationError, ValueError) as e:
        return f"MONGODB_URI is not a valid MongoDB URI: {e}"
    ms = int(timeout_s * 1000)
    client: AsyncMongoClient = AsyncMongoClient(
        uri, serverSelectionTimeoutMS=ms, connectTimeoutMS=ms
    )
    try:
        await client.admin.command("ping")
    except PyMongoError as e:
        reason = str(e).split(" (configured timeouts")[0].split(", Timeout:")[0]
        return (
            f"MongoDB at {where} did not answer within {timeout_s:g} s ({reason}). Start it, "
            "fix MONGODB_URI (or MONGODB_TIMEOUT_S), or unset MONGODB_URI to use the embedded "
            "SQLite store."
        )
    finally:
        await client.close()
    return None
