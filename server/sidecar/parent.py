"""Exit with the parent: a sidecar must never outlive the desktop app that started it.

Two signals, either one is enough: stdin (a pipe from the parent) reaches end of file, which
happens however the parent dies, on every OS; or the parent's pid is gone (checked once a
second), for parents that hand the child no stdin pipe."""

from __future__ import annotations

import os
import stat
import sys
import threading
from collections.abc import Callable

from server.logging import get_logger

log = get_logger(__name__)


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists (without signalling it)."""
    if sys.platform == "win32":
        import ctypes

        kernel32 = ctypes.windll.kernel32  # type: ignore[attr-defined]
        synchronize, wait_timeout = 0x00100000, 0x102
        handle = kernel32.OpenProcess(synchronize, False, pid)
        if not handle:
            return False
        try:
            return kernel32.WaitForSingleObject(handle, 0) == wait_timeout
        finally:
            kernel32.CloseHandle(handle)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


def stdin_is_pipe() -> bool:
    try:
        mode = os.fstat(sys.stdin.fileno()).st_mode
    except (OSError, ValueError, AttributeError):
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)


class ParentWatch:
    """Calls ``on_gone(reason)`` once, from a daemon thread, when the parent goes away."""

    def __init__(
        self,
        on_gone: Callable[[str], None],
        parent_pid: int | None = None,
        poll_s: float = 1.0,
        exit_after_s: float = 10.0,
    ) -> None:
        self._on_gone = on_gone
        self._parent_pid = parent_pid or os.getppid()
        # Without an explicit pid the parent is our real parent, and POSIX re-parents an
        # orphan (to init or a subreaper): getppid changing is the earliest sign.
        self._reparent_check = parent_pid is None and sys.platform != "win32"
        self._poll_s = poll_s
        self._exit_after_s = exit_after_s
        self._fired = threading.Event()

    def start(self) -> None:
        if stdin_is_pipe():
            threading.Thread(target=self._watch_stdin, name="parent-stdin", daemon=True).start()
        threading.Thread(target=self._watch_pid, name="parent-pid", daemon=True).start()

    def _fire(self, reason: str) -> None:
        if not self._fired.is_set():
            self._fired.set()
            log.warning("parent_gone", reason=reason)
            self._on_gone(reason)
            # The graceful path needs a running server; if it cannot finish (a failed
            # start-up, a stuck thread), an orphan must still go.
            timer = threading.Timer(self._exit_after_s, self._hard_exit)
            timer.daemon = True  # a graceful exit before it does not wait for it
            timer.start()

    def _hard_exit(self) -> None:
        log.error("parent_gone_forced_exit", after_s=self._exit_after_s)
        os._exit(1)

    def _watch_stdin(self) -> None:
        fd = sys.stdin.fileno()
        try:
            while os.read(fd, 65536):
                pass  # the parent may write; we only care about end of file
        except OSError:
            pass
        self._fire("stdin closed")

    def _watch_pid(self) -> None:
        pid = self._parent_pid
        while not self._fired.wait(self._poll_s):
            if not pid_alive(pid) or (self._reparent_check and os.getppid() != pid):
                self._fire(f"parent process {pid} is gone")
