"""Every start-up failure of the real `desktopmate serve` process is one line naming the
cause and the fix, and the exit status README.md documents, never a traceback: the port in
use, DATA_DIR not writable (also in sidecar mode, before its lock file), the SQLite store
unusable; Ctrl-C stops it with 130, without a traceback. (A bad setting, exit 2, is in
tests/test_replicas.py; an unreachable MongoDB and one that goes down after the pre-flight
ping, exit 3, in tests/store/test_mongo_reach.py.)"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from server.startup import EXIT_DATA_DIR, EXIT_INTERRUPTED, EXIT_LISTEN, EXIT_UNAVAILABLE
from server.store.sqlite import DB_FILENAME
from tests.sidecar.launch import ROOT, clean_env


def serve(tmp: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "server.cli", "serve", *args],
        cwd=ROOT,
        env=clean_env(tmp, **env),
        capture_output=True,
        text=True,
        timeout=90,
    )


def one_line(stderr: str) -> str:
    """The failure line: exactly one, and no traceback anywhere."""
    assert "Traceback" not in stderr, stderr
    lines = [ln for ln in stderr.splitlines() if ln.startswith("desktopmate: ")]
    assert len(lines) == 1, stderr
    return lines[0]


def test_a_port_in_use_is_named_with_the_fix(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = serve(tmp_path, "--port", str(port))
    assert proc.returncode == EXIT_LISTEN == 4, proc.stderr
    line = one_line(proc.stderr)
    assert f"Cannot listen on 127.0.0.1:{port} (Address already in use)" in line
    assert "--port 0 picks a free one" in line


@pytest.mark.parametrize("mode", [[], ["--sidecar"]])
def test_a_data_dir_that_cannot_be_written_is_named(tmp_path: Path, mode: list[str]) -> None:
    blocker = tmp_path / "a-file"  # a file where a folder should be: unwritable, even for root
    blocker.write_text("not a folder")
    proc = serve(tmp_path, "--port", "0", *mode, DATA_DIR=str(blocker / "data"))
    assert proc.returncode == EXIT_DATA_DIR == 5, proc.stderr
    line = one_line(proc.stderr)
    assert f"DATA_DIR={blocker / 'data'} cannot be written (Not a directory)" in line
    assert "Point DATA_DIR at a folder this user can write" in line


def test_an_unusable_sqlite_store_is_named(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / DB_FILENAME).write_bytes(b"this is no SQLite database, " * 100)
    proc = serve(tmp_path, "--port", "0")
    assert proc.returncode == EXIT_UNAVAILABLE == 3, proc.stderr
    line = one_line(proc.stderr)
    assert f"The SQLite store in DATA_DIR={data} did not open (file is not a database)" in line
    assert "Listening" not in proc.stderr and "listening" not in proc.stdout


def test_ctrl_c_stops_it_without_a_traceback(tmp_path: Path) -> None:
    """SIGINT after the ready line: the graceful shutdown, then exit 130 (uvicorn raises the
    signal again once it has stopped; that was a KeyboardInterrupt traceback)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "server.cli", "serve", "--port", "0"],
        cwd=ROOT,
        env=clean_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    ready = proc.stdout.readline()
    assert ready.startswith('{"event": "ready"'), ready
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == EXIT_INTERRUPTED == 130, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
