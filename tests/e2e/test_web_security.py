"""A web page is not the user: foreign Hosts (DNS rebinding) and Origins (any site the user
visits) are refused on REST and on every WebSocket path, over real HTTP and real handshakes."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from server.cli import insecure_bind
from server.config import Settings
from server.providers.audio_io import float_to_pcm16, write_wav
from tests.fakes.openai_server import FakeOpenAI
from tests.server_harness import ServerThread

ROOT = Path(__file__).resolve().parents[2]
EVIL = "http://evil.example"


async def ws_connect(
    srv: ServerThread,
    path: str = "/v1/ws",
    *,
    host: str | None = None,
    origin: str | None = None,
    subprotocols: list[str] | None = None,
) -> ClientConnection:
    """A real handshake to the server, naming ``host`` in the URL (so in the Host header)
    while the TCP connection goes to 127.0.0.1, as after DNS rebinding."""
    sock = socket.create_connection(("127.0.0.1", srv.port))
    uri = f"ws://{host or '127.0.0.1'}:{srv.port}{path}"
    return await connect(
        uri,
        sock=sock,
        origin=origin,  # type: ignore[arg-type]
        subprotocols=subprotocols,  # type: ignore[arg-type]
        proxy=None,
        open_timeout=10,
    )


async def refused_with(conn: ClientConnection) -> tuple[dict[str, object], int, str]:
    """The one fatal error event and the close code and reason of a refused socket."""
    event = json.loads(await asyncio.wait_for(conn.recv(), 10))
    with pytest.raises(ConnectionClosed):
        await asyncio.wait_for(conn.recv(), 10)
    assert conn.close_code is not None
    return event, conn.close_code, conn.close_reason or ""


async def sessions_of_local(srv: ServerThread) -> list[object]:
    async with httpx.AsyncClient(base_url=srv.url) as http:
        return (await http.get("/v1/sessions")).json()["sessions"]


def wav_3s() -> bytes:
    t = np.arange(3 * 16_000) / 16_000
    return write_wav(float_to_pcm16(0.3 * np.sin(2 * np.pi * 220 * t)), 16_000)


# --- WebSocket ------------------------------------------------------------------------------


async def test_websocket_from_a_foreign_origin_is_closed_4403_before_any_session(
    server: ServerThread,
):
    conn = await ws_connect(server, origin=EVIL)
    event, code, reason = await refused_with(conn)
    assert event["type"] == "error" and event["code"] == "forbidden_origin"
    assert event["fatal"] is True and "ALLOWED_ORIGINS" in str(event["message"])
    assert (code, reason) == (4403, "forbidden_origin")
    assert await sessions_of_local(server) == []  # the app never saw it: no session, no memory


async def test_every_websocket_path_is_covered_even_routes_added_later(server: ServerThread):
    for path in ("/v1/realtime", "/v1/chat/stream", "/anything"):
        conn = await ws_connect(server, path, origin=EVIL)
        _, code, reason = await refused_with(conn)
        assert (code, reason) == (4403, "forbidden_origin"), path


async def test_a_browser_offering_a_subprotocol_still_sees_the_4403(server: ServerThread):
    """Browsers fail a handshake that selects none of their subprotocols (1006, no reason)."""
    conn = await ws_connect(server, origin=EVIL, subprotocols=["bearer.abc"])
    assert conn.subprotocol == "bearer.abc"
    _, code, _ = await refused_with(conn)
    assert code == 4403


async def test_websocket_with_a_rebound_host_name_is_closed_4403(server: ServerThread):
    conn = await ws_connect(server, host="evil.example")
    event, code, reason = await refused_with(conn)
    assert (event["code"], code, reason) == ("forbidden_host", 4403, "forbidden_host")
    assert "PUBLIC_HOSTS" in str(event["message"])


@pytest.mark.parametrize(
    "origin",
    [
        None,  # scripts and native apps send no Origin
        "own",
        "tauri://localhost",
        "http://tauri.localhost",
        "https://tauri.localhost",
        "http://localhost:1420",  # listed in ALLOWED_ORIGINS below
        "http://app.example",  # listed in the older CORS_ORIGINS, merged
    ],
)
async def test_allowed_origins_get_a_session(
    server_factory: Callable[..., ServerThread], llm: FakeOpenAI, origin: str | None
):
    srv = server_factory(
        llm, allowed_origins="http://localhost:1420", cors_origins="http://app.example"
    )
    own = f"http://127.0.0.1:{srv.port}"
    conn = await ws_connect(srv, origin=own if origin == "own" else origin)
    assert json.loads(await conn.recv())["type"] == "session.created"
    await conn.close()


async def test_loopback_names_and_public_hosts_are_allowed(
    server_factory: Callable[..., ServerThread], llm: FakeOpenAI
):
    srv = server_factory(llm, public_hosts="companion.lan")
    for host in ("localhost", "companion.lan"):
        # The page's own origin on that name is allowed too.
        conn = await ws_connect(srv, host=host, origin=f"http://{host}:{srv.port}")
        assert json.loads(await conn.recv())["type"] == "session.created", host
        await conn.close()


# --- REST ---------------------------------------------------------------------------------


async def test_dns_rebinding_cannot_read_sessions(server: ServerThread):
    async with httpx.AsyncClient(base_url=server.url) as http:
        r = await http.get("/v1/sessions", headers={"Host": "evil.example"})
        assert r.status_code == 403 and "PUBLIC_HOSTS" in r.json()["detail"]
        r = await http.get("/v1/sessions", headers={"Host": f"evil.example:{server.port}"})
        assert r.status_code == 403
        for ok in (f"localhost:{server.port}", f"[::1]:{server.port}", "127.0.0.1"):
            assert (await http.get("/v1/sessions", headers={"Host": ok})).status_code == 200
        # Health probes (Kubernetes names the pod by IP) are answered whatever the Host.
        assert (await http.get("/health", headers={"Host": "10.1.2.3:8000"})).status_code == 200


async def test_public_hosts_star_allows_any_host(
    server_factory: Callable[..., ServerThread], llm: FakeOpenAI
):
    srv = server_factory(llm, public_hosts="*")
    async with httpx.AsyncClient(base_url=srv.url) as http:
        r = await http.get("/v1/sessions", headers={"Host": "whatever.example"})
    assert r.status_code == 200


async def test_cross_site_multipart_voice_upload_is_refused(server: ServerThread):
    """A form POST needs no CORS preflight: the browser sends it and only hides the answer.
    It must not replace the user's voice reference."""
    voice = server.services.voice_path("local")
    files = {"audio_file": ("v.wav", wav_3s(), "audio/wav")}
    async with httpx.AsyncClient(base_url=server.url) as http:
        r = await http.post("/v1/voice", files=files, headers={"Origin": EVIL})
        assert r.status_code == 403 and "ALLOWED_ORIGINS" in r.json()["detail"]
        assert not voice.exists()
        # A browser that leaves Origin out still marks the request cross-site.
        r = await http.post("/v1/voice", files=files, headers={"Sec-Fetch-Site": "cross-site"})
        assert r.status_code == 403 and not voice.exists()
        # The studio page (same origin) and scripts (no Origin) may.
        own = {"Origin": server.url, "Sec-Fetch-Site": "same-origin"}
        assert (await http.post("/v1/voice", files=files, headers=own)).status_code == 200
        assert (await http.post("/v1/voice", files=files)).status_code == 200
    assert voice.exists()


async def test_foreign_origin_cannot_read_or_write_over_rest(server: ServerThread):
    async with httpx.AsyncClient(base_url=server.url) as http:
        for method, path in (("GET", "/v1/sessions"), ("DELETE", "/v1/reminders/x")):
            r = await http.request(method, path, headers={"Origin": EVIL})
            assert r.status_code == 403, (method, path)
        r = await http.get("/v1/sessions", headers={"Origin": "null"})  # sandboxed / file://
        assert r.status_code == 403
        # Following a link from another site to the studio is a GET: allowed.
        r = await http.get("/", headers={"Sec-Fetch-Site": "cross-site"})
        assert r.status_code == 200


async def test_allowed_origin_gets_cors_headers_and_a_foreign_preflight_does_not(
    server_factory: Callable[..., ServerThread], llm: FakeOpenAI
):
    srv = server_factory(llm, allowed_origins="http://localhost:1420")
    pre = {
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type",
    }
    async with httpx.AsyncClient(base_url=srv.url) as http:
        r = await http.get("/v1/sessions", headers={"Origin": "http://localhost:1420"})
        assert r.status_code == 200
        assert r.headers["access-control-allow-origin"] == "http://localhost:1420"
        r = await http.options("/v1/voice", headers={"Origin": "tauri://localhost"} | pre)
        assert r.status_code == 200
        assert r.headers["access-control-allow-origin"] == "tauri://localhost"
        r = await http.options("/v1/voice", headers={"Origin": EVIL} | pre)
        assert r.status_code == 403 and "access-control-allow-origin" not in r.headers


async def test_token_mode_still_refuses_foreign_origins(
    server_factory: Callable[..., ServerThread], llm: FakeOpenAI
):
    """A valid token does not make a foreign page trusted: the page may hold a token it
    should not (pasted, leaked) and must not be able to drive the server from its origin."""
    srv = server_factory(llm, auth_tokens="tok-a:alice")
    auth = {"Authorization": "Bearer tok-a"}
    async with httpx.AsyncClient(base_url=srv.url) as http:
        assert (await http.get("/v1/sessions", headers=auth)).status_code == 200
        r = await http.get("/v1/sessions", headers=auth | {"Origin": EVIL})
        assert r.status_code == 403
    conn = await ws_connect(srv, "/v1/ws?token=tok-a", origin=EVIL)
    _, code, _ = await refused_with(conn)
    assert code == 4403


# --- binding ---


@pytest.mark.parametrize(
    ("host", "over", "refused"),
    [
        ("127.0.0.1", {}, False),
        ("localhost", {}, False),
        ("::1", {}, False),
        ("0.0.0.0", {}, True),
        ("192.168.1.20", {}, True),
        ("0.0.0.0", {"auth_tokens": "t:u"}, False),
        ("0.0.0.0", {"jwt_secret": "s" * 32}, False),
        ("0.0.0.0", {"jwt_jwks_url": "https://x.example/jwks.json"}, False),
    ],
)
def test_which_binds_local_mode_refuses(host: str, over: dict[str, str], refused: bool):
    settings = Settings(_env_file=None, **over)  # type: ignore[call-arg]
    assert (insecure_bind(settings, host) is not None) is refused


def serve(tmp_path: Path, host: str, **env: str) -> subprocess.Popen[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("AUTH_", "JWT_", "ALLOW"))}
    return subprocess.Popen(
        [sys.executable, "-m", "server.cli", "serve", "--host", host, "--port", "0"],
        cwd=tmp_path,
        env=clean
        | {"PYTHONPATH": str(ROOT), "DATA_DIR": str(tmp_path / "data"), "FACE_ENABLED": "false"}
        | {"STT_ENABLED": "false", "MEMORY_ENABLED": "false"}
        | env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


@pytest.mark.parametrize("host", ["0.0.0.0", "::"])
def test_local_mode_refuses_to_listen_beyond_loopback(tmp_path: Path, host: str):
    proc = serve(tmp_path, host)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 2
    assert f"Refusing to listen on {host!r} in local mode" in out
    assert "ALLOW_INSECURE_LOCAL_BIND=true" in out and "listening" not in out


def test_an_accepted_risk_lets_it_listen_on_every_address(tmp_path: Path):
    proc = serve(tmp_path, "0.0.0.0", ALLOW_INSECURE_LOCAL_BIND="true")
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if "listening on" in line:
                break
        else:
            pytest.fail(f"the server did not start (exit {proc.wait()})")
    finally:
        proc.terminate()
        proc.wait(30)
