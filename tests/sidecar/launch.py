"""Start `desktopmate serve` as its own process (the console script, or the built binary) and
read its ready line, as a parent app would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from server.config import Settings

ROOT = Path(__file__).resolve().parents[2]


def clean_env(tmp: Path, **settings: str) -> dict[str, str]:
    """This environment minus every server setting, plus a private DATA_DIR, no speech
    recognition, no face model and ``settings``."""
    ours = {name.upper() for name in Settings.model_fields}
    env = {k: v for k, v in os.environ.items() if k.upper() not in ours}
    base = {
        "DATA_DIR": str(tmp / "data"),
        "STT_ENABLED": "false",  # not configured: /health stays 200 (a broken one is 503)
        "FACE_ENABLED": "false",
        "MEMORY_ENABLED": "false",
        "DEFAULT_OUTPUT_AUDIO": "none",
        "LOG_LEVEL": "WARNING",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH", "")])),
    }
    return env | base | settings


def source_command() -> list[str]:
    return [sys.executable, "-m", "server.cli"]


class Launched:
    """A server process; ``ready`` is its parsed JSON ready line, ``lines`` all stdout."""

    def __init__(self, cmd: list[str], env: dict[str, str], cwd: Path) -> None:
        self.started_at = time.monotonic()
        self.proc = subprocess.Popen(
            cmd,
            env=env,
            cwd=cwd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []
        self.stderr: list[str] = []
        self._stderr_thread = threading.Thread(target=self._drain_stderr, daemon=True)
        self._stderr_thread.start()
        self.ready: dict[str, Any] = {}
        self.ready_after_s = 0.0

    def _drain_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.stderr.append(line)

    def wait_ready(self, timeout_s: float = 120.0) -> dict[str, Any]:
        """Read stdout lines until the JSON ready line (in a thread, with a deadline)."""
        assert self.proc.stdout is not None
        found = threading.Event()

        def read() -> None:
            assert self.proc.stdout is not None
            for line in self.proc.stdout:
                self.lines.append(line)
                if line.startswith("{"):
                    self.ready = json.loads(line)
                    self.ready_after_s = time.monotonic() - self.started_at
                    break
            found.set()  # ready, or stdout closed: the process is gone

        threading.Thread(target=read, daemon=True).start()
        if not found.wait(timeout_s) or not self.ready:
            self.kill()
            self._stderr_thread.join(5)
            raise RuntimeError(
                f"no ready line (exit code {self.proc.returncode}); stdout={self.lines} "
                f"stderr={''.join(self.stderr)[-3000:]}"
            )
        return self.ready

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)

    def close(self) -> None:
        """SIGTERM and wait (a sidecar has usually gone already, with its stdin)."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()
        self._stderr_thread.join(5)
