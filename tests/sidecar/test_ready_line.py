"""`desktopmate serve --port 0` in its own process: the JSON ready line comes only when the
socket accepts, so a parent can connect the moment it reads it (no retry loop here)."""

from __future__ import annotations

import socket
from pathlib import Path

import httpx

from server import __version__
from tests.sidecar.launch import Launched, clean_env, source_command


def test_port_0_prints_a_json_ready_line_after_the_socket_accepts(tmp_path: Path) -> None:
    srv = Launched([*source_command(), "serve", "--port", "0"], clean_env(tmp_path), tmp_path)
    try:
        ready = srv.wait_ready()
        # one connection attempt, at once: refused would mean the line came too early
        with socket.create_connection(("127.0.0.1", ready["port"]), timeout=2):
            pass
        r = httpx.get(ready["url"] + "/health", timeout=10)
        assert r.status_code == 200, r.text
        assert ready["event"] == "ready" and ready["version"] == __version__
        assert ready["url"] == f"http://127.0.0.1:{ready['port']}"
        assert ready["pid"] == srv.proc.pid and ready["port"] > 0
        assert "token" not in ready  # only sidecar mode has one
        assert srv.lines == [srv.lines[-1]]  # stdout carries the JSON line alone
    finally:
        srv.close()
    assert any(f"listening on {ready['url']}" in line for line in srv.stderr)
