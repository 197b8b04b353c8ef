"""`desktopmate serve --sidecar` as a parent app runs it: one instance per data folder, gone
with its parent (stdin closed or parent pid gone), SIGTERM within 5 s keeping what it
acknowledged."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
from websockets.asyncio.client import connect

from server.sidecar.lock import InstanceLock
from tests.e2e.conftest import make_settings
from tests.fakes.openai_server import FakeOpenAI
from tests.server_harness import WsClient, running_server, text_turn
from tests.sidecar.launch import Launched, clean_env, source_command

SIDECAR = [*source_command(), "serve", "--sidecar", "--port", "0"]


def exited_within(proc: subprocess.Popen[str], seconds: float) -> float:
    started = time.monotonic()
    proc.wait(seconds)
    return time.monotonic() - started


def test_a_second_instance_exits_at_once_naming_the_first(tmp_path: Path) -> None:
    env = clean_env(tmp_path)
    first = Launched(SIDECAR, env, tmp_path)
    try:
        first.wait_ready()
        second = Launched(SIDECAR, env, tmp_path)
        assert second.proc.wait(60) == 3
        second.close()
        assert second.lines == []  # never ready
        err = "".join(second.stderr)
        assert f"pid {first.proc.pid}" in err and str(tmp_path / "data") in err
        assert "Traceback" not in err
    finally:
        first.close()


def test_exits_when_its_stdin_closes_and_frees_the_folder(tmp_path: Path) -> None:
    env = clean_env(tmp_path)
    srv = Launched(SIDECAR, env, tmp_path)
    srv.wait_ready()
    assert srv.proc.stdin is not None
    srv.proc.stdin.close()  # what every OS does to the pipe when the parent dies
    exited_within(srv.proc, 10)
    srv.close()
    lock = InstanceLock(tmp_path / "data")  # the folder is free again
    lock.acquire()
    lock.release()


def test_exits_when_the_parent_pid_is_gone(tmp_path: Path) -> None:
    parent = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    srv = Launched([*SIDECAR, "--parent-pid", str(parent.pid)], clean_env(tmp_path), tmp_path)
    try:
        srv.wait_ready()
        time.sleep(1.5)
        assert srv.proc.poll() is None  # alive while its parent is
        parent.kill()
        parent.wait()
        exited_within(srv.proc, 10)
        assert any("parent_gone" in line for line in srv.stderr) or srv.proc.returncode == 0
    finally:
        parent.kill()
        srv.close()


async def test_sigterm_stops_within_5_s_keeping_acknowledged_turns(
    tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    env = clean_env(
        tmp_path,
        LLM_BASE_URL=fake_openai.base_url,
        LLM_API_KEY="test-key",
        LLM_MODEL="fake-model",
    )
    srv = Launched(SIDECAR, env, tmp_path)
    ready = srv.wait_ready()
    token = ready["token"]
    ws_url = ready["url"].replace("http", "ws", 1) + f"/v1/ws?persona=emma&token={token}"
    fake_openai.queue_reply("Stored before you asked me to stop.")
    ws = WsClient(await connect(ws_url, open_timeout=10))
    created = await ws.wait_for("session.created")
    _, done = await text_turn(ws, "Remember this line.")
    assert done["status"] == "completed"
    srv.proc.send_signal(signal.SIGTERM)  # with the socket still open
    took = exited_within(srv.proc, 5)
    srv.close()
    assert took < 5
    await ws.conn.close()
    # A server on the same data folder has the acknowledged turn (the sidecar's user is
    # "local", which is also the local-mode user of a plain server).
    with running_server(make_settings(tmp_path, None, data_dir=tmp_path / "data")) as again:
        sid = created["session"]["id"]
        async with httpx.AsyncClient(base_url=again.url) as http:
            r = await http.get(
                f"/v1/sessions/{sid}/messages", headers={"Authorization": "Bearer local"}
            )
    assert r.status_code == 200, r.text
    assert [(m["role"], m["content"]) for m in r.json()["messages"]] == [
        ("user", "Remember this line."),
        ("assistant", "Stored before you asked me to stop."),
    ]


async def test_the_token_is_required_on_every_request(tmp_path: Path) -> None:
    srv = Launched(SIDECAR, clean_env(tmp_path), tmp_path)
    try:
        ready = srv.wait_ready()
        token = ready["token"]
        assert len(token) >= 40
        good = {"Authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(base_url=ready["url"]) as http:
            for path in ("/health", "/docs", "/", "/v1/personas", "/openapi.json"):
                refused = await http.get(path)
                assert refused.status_code == 401, path
                assert "token from its ready line" in refused.json()["detail"]
                wrong = await http.get(path, headers={"Authorization": "Bearer local"})
                assert wrong.status_code == 401, path
                assert (await http.get(path, headers=good)).status_code == 200, path
            # the studio opened with ?token= gets a cookie its own requests then carry
            page = await http.get("/", params={"token": token})
            assert page.status_code == 200
            assert "HttpOnly" in page.headers["set-cookie"]
            assert "SameSite=Strict" in page.headers["set-cookie"]
            assert (await http.get("/app.js")).status_code == 200  # cookie jar
        ws_base = ready["url"].replace("http", "ws", 1) + "/v1/ws?persona=emma"
        refused_ws = WsClient(await connect(ws_base, open_timeout=10))
        err = await refused_ws.wait_for("error")
        assert err["code"] == "unauthorized" and err["fatal"] is True
        await refused_ws.conn.wait_closed()
        assert refused_ws.conn.close_code == 4401
        ws = WsClient(await connect(f"{ws_base}&token={token}", open_timeout=10))
        created = await ws.wait_for("session.created")
        assert created["session"]["user_id"] == "local"
        await ws.conn.close()
    finally:
        srv.close()
