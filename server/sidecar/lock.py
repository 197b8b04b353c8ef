"""One server per data folder: an OS file lock (released by the kernel when the process
dies, so a crash never leaves a stale lock) plus a pid file naming the holder."""

from __future__ import annotations

import os
from pathlib import Path

from filelock import FileLock, Timeout

LOCK_NAME = "desktopmate.lock"
PID_NAME = "desktopmate.pid"


class AlreadyRunning(RuntimeError):
    """Another server holds this data folder. The message names its pid."""

    def __init__(self, data_dir: Path, pid: int | None) -> None:
        who = f"pid {pid}" if pid else "another process"
        super().__init__(
            f"another DesktopMate-Plus server ({who}) is already using the data folder "
            f"{data_dir}; stop it first, or set DATA_DIR to another folder"
        )
        self.pid = pid


class InstanceLock:
    """Held for the life of the server; ``acquire`` fails at once when taken."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self._lock = FileLock(data_dir / LOCK_NAME, timeout=0)
        self._pid_file = data_dir / PID_NAME

    def holder(self) -> int | None:
        try:
            return int(self._pid_file.read_text().strip())
        except (OSError, ValueError):
            return None

    def acquire(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        try:
            self._lock.acquire()
        except Timeout:
            raise AlreadyRunning(self.data_dir, self.holder()) from None
        self._pid_file.write_text(f"{os.getpid()}\n")

    def release(self) -> None:
        if self._lock.is_locked:
            self._pid_file.unlink(missing_ok=True)
            self._lock.release()
