"""The real server as a separate process that a test can kill -9, started in about a second.

``desktopmate serve`` in a fresh interpreter spends most of its start-up importing (10 s on
a loaded 2-core machine). Here the processes are forked from a multiprocessing *forkserver*
that imported the server once (``set_forkserver_preload``): each child then runs exactly
what ``desktopmate serve --port 0`` runs (server.cli.main), in its own directory, with its
own environment and log, and can be killed with SIGKILL like any process.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import signal
import sys
from collections.abc import AsyncIterator
from multiprocessing.context import ForkServerContext
from multiprocessing.process import BaseProcess
from pathlib import Path

from bench.procs import ServerProcess, listening_url

_CTX: ForkServerContext | None = None


def _context() -> ForkServerContext:
    global _CTX
    if _CTX is None:
        _CTX = multiprocessing.get_context("forkserver")
        # The server, and what its start-up imports lazily (VAD, STT, the LLM client's HTTP,
        # mem0 and its pgvector store for the replica fleet). And pytest's: every child first
        # re-runs the parent's main script (multiprocessing's spawn preparation), the pytest
        # launcher, whose one import is _pytest.config: about a second per child on a busy
        # 2-core machine when the forkserver has not imported it already.
        _CTX.set_forkserver_preload(
            [
                *("server.cli", "server.app", "onnxruntime", "faster_whisper", "httpcore", "h2"),
                *("mem0.memory.main", "mem0.vector_stores.pgvector", "_pytest.config"),
            ]
        )
    return _CTX


def _serve(workdir: str, env: dict[str, str], log_path: str) -> None:
    """The child: this environment and directory, output to the log, then the CLI."""
    os.environ.clear()
    os.environ.update(env)
    os.chdir(workdir)
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    from server.cli import main

    sys.exit(main(["serve", "--port", "0"]))


class ForkedServer(ServerProcess):
    """ServerProcess (readiness, URLs, log) whose process comes from the forkserver."""

    child: BaseProcess | None = None

    async def spawn(self) -> None:
        self.child = _context().Process(
            target=_serve, args=(str(self.workdir), self.env, str(self.log_path)), daemon=True
        )
        self.log_path.touch()
        await asyncio.to_thread(self.child.start)
        self.url = await listening_url(self.log_path, self.exited, self.timeout_s)

    def exited(self) -> bool:
        return self.child is None or self.child.exitcode is not None

    @property
    def pid(self) -> int:
        assert self.child is not None and self.child.pid is not None
        return self.child.pid

    def kill(self) -> None:
        os.kill(self.pid, signal.SIGKILL)

    async def wait_exit(self) -> int | None:
        assert self.child is not None
        await asyncio.to_thread(self.child.join, 30)
        return self.child.exitcode

    async def stop(self) -> None:
        if self.child is None or self.child.exitcode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGINT)
        if await self.wait_exit() is None:
            self.kill()
            await self.wait_exit()


# What a replica fleet test leaves out (no memory, face, STT, audio or proactive turns), with
# structlog JSON logs to read each replica's events from.
FLEET_QUIET = {
    "MEMORY_ENABLED": "false",
    "PROACTIVE_MODE": "off",
    "FACE_ENABLED": "false",
    "STT_ENABLED": "false",
    "DEFAULT_OUTPUT_AUDIO": "none",
    "LOG_LEVEL": "INFO",
    "LOG_FORMAT": "json",
}


@contextlib.asynccontextmanager
async def replica_fleet(
    tmp: Path, shared: dict[str, str], names: tuple[str, ...] = ("replica-a", "replica-b")
) -> AsyncIterator[list[ForkedServer]]:
    """Replicas (REPLICA_MODE=multi) on the store ``shared`` names, each with its own
    INSTANCE_ID, DATA_DIR and log; started side by side (half the wait), stopped after."""
    from bench.procs import server_env

    replicas = []
    for name in names:
        run = tmp / name
        run.mkdir()
        env = server_env(
            {"REPLICA_MODE": "multi"}
            | FLEET_QUIET
            | shared
            | {"INSTANCE_ID": name, "DATA_DIR": str(run / "data")}
        )
        replicas.append(ForkedServer(run, env, timeout_s=90))
    try:
        await asyncio.gather(*(r.start() for r in replicas))
        yield replicas
    finally:
        for r in replicas:
            await r.stop()
