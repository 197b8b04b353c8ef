"""An unreachable or mistyped MONGODB_URI ends `desktopmate serve` after MONGODB_TIMEOUT_S
with one line (exit 3), not pymongo's 30 s wait and a traceback; a reachable one passes."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from server.store.mongo_reach import unreachable

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


def test_serve_names_a_uri_that_is_not_mongodb(tmp_path: Path):
    proc = serve(tmp_path, MONGODB_URI="postgres://127.0.0.1/x")
    assert proc.returncode == 3, proc.stderr
    assert "MONGODB_URI is not a valid MongoDB URI" in proc.stderr
    assert "Traceback" not in proc.stderr


async def test_a_reachable_mongodb_passes(mongo_uri: str):
    assert await unreachable(mongo_uri, 2) is None
