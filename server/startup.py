"""Start-up failures of ``desktopmate serve``: one line on stderr naming the cause and the
fix, and an exit status a parent app or a supervisor can act on, never a traceback.

The statuses (README.md, "Exit status"):

- 2: the configuration is refused (a bad setting, an unsafe bind, multi mode on embedded
  stores);
- 3: something the server needs is unavailable: MongoDB unreachable or failing while the
  store opens, the store's files unusable, another instance on DATA_DIR (sidecar);
- 4: it cannot listen on --host/--port (in use, not permitted, no such address);
- 5: DATA_DIR cannot be written;
- 1: anything else that failed while starting (the traceback is logged at DEBUG);
- 130: stopped with Ctrl-C (SIGINT), after the graceful shutdown."""

from __future__ import annotations

import errno
import os
import sqlite3
import sys
import tempfile
from pathlib import Path

from server.config import Settings, secret
from server.logging import get_logger

log = get_logger(__name__)

EXIT_FAILED = 1
EXIT_CONFIG = 2
EXIT_UNAVAILABLE = 3
EXIT_LISTEN = 4
EXIT_DATA_DIR = 5
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report it


class StartupFailure(Exception):
    """Why the server cannot start (one line for the console) and its exit status."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def data_dir_problem(data_dir: Path) -> StartupFailure | None:
    """Can the server create DATA_DIR and write in it (the store, logs, the sidecar lock)?"""
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=data_dir):
            pass
    except OSError as e:
        return StartupFailure(
            f"DATA_DIR={data_dir} cannot be written ({e.strerror or e}). Point DATA_DIR at a "
            "folder this user can write, or fix its permissions.",
            EXIT_DATA_DIR,
        )
    return None


def listen_failure(host: str, port: int, e: OSError) -> StartupFailure:
    """Binding --host/--port failed."""
    if e.errno == errno.EADDRINUSE:
        fix = "Stop the program using it, or pick another --port (--port 0 picks a free one)."
    elif e.errno == errno.EACCES:
        fix = "Ports below 1024 need privileges: pick a --port above 1023."
    elif e.errno == errno.EADDRNOTAVAIL:
        fix = "That address is not this machine's: use 127.0.0.1, 0.0.0.0 or one of its own."
    else:
        fix = "Check --host and --port."
    return StartupFailure(f"Cannot listen on {host}:{port} ({e.strerror or e}). {fix}", EXIT_LISTEN)


def start_failure(settings: Settings, e: Exception) -> StartupFailure:
    """An exception from building the app or starting its services, as one line."""
    if isinstance(e, StartupFailure):
        return e
    reason = _first_line(e)
    mongo_errors = sys.modules.get("pymongo.errors")  # imported only with MongoDB configured
    if (
        mongo_errors is not None
        and isinstance(e, mongo_errors.PyMongoError)
        and (uri := secret(settings.mongodb_uri))
    ):
        from server.store.mongo_reach import hosts

        try:
            where = hosts(uri, settings.mongodb_timeout_s)
        except Exception:  # the pre-flight check parsed it; never fail on the message
            where = "MONGODB_URI"
        return StartupFailure(
            f"MongoDB at {where} failed while the store opened ({reason}). Check that it is "
            "running and reachable (MONGODB_URI, MONGODB_TIMEOUT_S), then start again.",
            EXIT_UNAVAILABLE,
        )
    if isinstance(e, sqlite3.Error):
        return StartupFailure(
            f"The SQLite store in DATA_DIR={settings.data_dir} did not open ({reason}). Free "
            "disk space, stop another server using this DATA_DIR, or restore the store's file.",
            EXIT_UNAVAILABLE,
        )
    if isinstance(e, OSError) and e.filename:
        where = os.fsdecode(e.filename)
        return StartupFailure(
            f"Cannot use {where} ({e.strerror or reason}). Check DATA_DIR, LOG_FILE and the "
            "other paths in the environment, and their permissions.",
            EXIT_DATA_DIR if e.errno in (errno.EACCES, errno.EROFS, errno.ENOTDIR) else EXIT_FAILED,
        )
    log.debug("startup_failed", exc_info=e)
    return StartupFailure(
        f"Start-up failed: {type(e).__name__}: {reason}. Run with --log-level DEBUG for the "
        "traceback.",
        EXIT_FAILED,
    )


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    reason = text[0] if text else type(e).__name__
    # pymongo appends its topology description after the reason: not for a console line
    return reason.split(", Timeout:")[0].split(" (configured timeouts")[0]
