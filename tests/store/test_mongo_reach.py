"""An unreachable MONGODB_URI ends `desktopmate serve` after MONGODB_TIMEOUT_S with one line
(exit 3; a mistyped one at once, exit 2), not pymongo's 30 s wait and a traceback; a reachable one passes; one
that goes down after that pre-flight ping (the store fails as it opens) is one line too."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from server.startup import EXIT_CONFIG, EXIT_UNAVAILABLE
from server.store import new_id
from server.store.mongo_reach import unreachable
from tests.sidecar.launch import clean_env
from tests.test_startup_failures import one_line

ROOT = Path(__file__).resolve().parents[2]


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "server.cli", "serve", "--port", "0"],
        cwd=tmp_path,
        env=os.environ | {"PYTHONPATH": str(ROOT), "DATA_DIR": str(tmp_path / "data")} | env,
        capture_output=True,
        text=True,
        timeout=90,
    )


def test_serve_names_an_unreachable_mongodb_in_one_line(tmp_path: Path):
    port = closed_port()
    started = time.monotonic()
    proc = serve(
        tmp_path, MONGODB_URI=f"mongodb://admin:hunter2@127.0.0.1:{port}", MONGODB_TIMEOUT_S="1"
    )
    took = time.monotonic() - started
    assert proc.returncode == 3, proc.stderr
    assert f"MongoDB at 127.0.0.1:{port} did not answer within 1 s" in proc.stderr
    assert "unset MONGODB_URI" in proc.stderr
    assert "Traceback" not in proc.stderr and "hunter2" not in proc.stderr
    assert "Started server process" not in proc.stderr  # refused before uvicorn starts
    assert took < 30, took  # not pymongo's 30 s server selection


@pytest.mark.parametrize(
    "uri",
    [
        "postgres://127.0.0.1/x",
        "http://127.0.0.1:27017",
        "mongodb://",
        "mongodb://127.0.0.1:99999",
        "mongodb://127.0.0.1/?tls=maybe",
    ],
)
def test_serve_names_a_uri_that_is_not_mongodb(tmp_path: Path, uri: str):
    """A mistyped URI is a bad setting (exit 2, as README's "Exit status" says), not a
    MongoDB to wait for: a supervisor that restarts on 3 would restart it forever."""
    proc = serve(tmp_path, MONGODB_URI=uri)
    assert proc.returncode == EXIT_CONFIG, proc.stderr
    assert "MONGODB_URI is not a valid MongoDB URI" in proc.stderr
    assert "Traceback" not in proc.stderr


async def test_a_reachable_mongodb_passes(mongo_uri: str):
    assert await unreachable(mongo_uri, 2) is None


class FlakyLink:
    """A TCP relay to the MongoDB-wire server that goes down (stops accepting, drops its
    connections) once the first client's connections have all closed: the server's
    pre-flight ping gets through, the store's own client finds MongoDB gone."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.open = 0
        self.served = 0
        self.server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.open += 1
        self.served += 1
        up_r, up_w = await asyncio.open_connection("127.0.0.1", self.target_port)

        async def pipe(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError):
                while data := await r.read(65536):
                    w.write(data)
                    await w.drain()
            w.close()

        await asyncio.gather(pipe(reader, up_w), pipe(up_r, writer))
        self.open -= 1
        if self.open == 0 and self.server is not None:  # the ping's client is gone: go down
            self.server.close()


@pytest.fixture
async def flaky_mongo(mongo_uri: str) -> AsyncIterator[FlakyLink]:
    link = FlakyLink(int(mongo_uri.rsplit(":", 1)[1].split("/")[0]))
    await link.start()
    yield link
    if link.server is not None:
        link.server.close()


async def test_a_mongodb_gone_after_the_ping_is_named(
    tmp_path: Path, flaky_mongo: FlakyLink
) -> None:
    env = clean_env(
        tmp_path,
        MONGODB_URI=f"mongodb://127.0.0.1:{flaky_mongo.port}",
        MONGODB_DB=f"gone_{new_id()}",
        MONGODB_TIMEOUT_S="1",
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        *("-m", "server.cli", "serve", "--port", "0"),
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 90)
    stderr = err.decode()
    assert flaky_mongo.served >= 1  # the pre-flight ping got through
    assert proc.returncode == EXIT_UNAVAILABLE, stderr
    line = one_line(stderr)
    assert f"MongoDB at 127.0.0.1:{flaky_mongo.port} failed while the store opened" in line
    assert "Check that it is running and reachable" in line
    assert b"listening" not in out


def test_memory_cleanup_names_an_unreachable_mongodb_in_one_line(tmp_path: Path):
    """`desktopmate memory cleanup` opens the store as the server does: an unreachable
    MongoDB is one line and exit 3 after MONGODB_TIMEOUT_S, a mistyped URI exit 2, never
    a traceback or the password."""
    port = closed_port()
    env = os.environ | {"PYTHONPATH": str(ROOT), "DATA_DIR": str(tmp_path / "data")}
    env |= {"MONGODB_URI": f"mongodb://admin:hunter2@127.0.0.1:{port}", "MONGODB_TIMEOUT_S": "1"}
    cmd = [sys.executable, "-m", "server.cli", "memory", "cleanup", "--days", "1"]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=90)
    assert proc.returncode == EXIT_UNAVAILABLE, proc.stderr
    assert f"MongoDB at 127.0.0.1:{port}" in proc.stderr and "MONGODB_URI" in proc.stderr
    assert "Traceback" not in proc.stderr and "hunter2" not in proc.stderr
    env |= {"MONGODB_URI": "postgres://127.0.0.1/x"}
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=90)
    assert proc.returncode == EXIT_CONFIG, proc.stderr
    assert "MONGODB_URI is not a valid MongoDB URI" in proc.stderr
    assert "Traceback" not in proc.stderr
