"""JWT auth over a real server: HS256 with a shared secret, RS256 and ES256 from a JWKS served
by a real loopback HTTP server with keys this test generated, beside static AUTH_TOKENS; the
token on REST (Authorization) and on the WebSocket (subprotocol, query); a token that
expires during a session ends it after the current reply."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.fakes.openai_server import FakeOpenAI
from tests.server_harness import ServerThread, WsClient

SECRET = "test-secret-of-at-least-32-bytes-long!"
AUD = "authenticated"
ISS = "https://issuer.example/auth/v1"


class SigningKey:
    """A key pair the test made, with its kid and its public JWK."""

    def __init__(self, alg: str) -> None:
        self.alg = alg
        self.kid = uuid.uuid4().hex[:12]
        if alg == "RS256":
            self.private: Any = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            jwk = RSAAlgorithm.to_jwk(self.private.public_key(), as_dict=True)
        else:
            self.private = ec.generate_private_key(ec.SECP256R1())
            jwk = ECAlgorithm.to_jwk(self.private.public_key(), as_dict=True)
        self.jwk = jwk | {"kid": self.kid, "alg": alg, "use": "sig"}

    def sign(self, **claims: Any) -> str:
        return jwt.encode(claims_for(**claims), self.private, self.alg, headers={"kid": self.kid})


def claims_for(**over: Any) -> dict[str, Any]:
    now = int(time.time())
    return {"sub": "alice", "aud": AUD, "iss": ISS, "iat": now, "exp": now + 600} | over


def hs256(**claims: Any) -> str:
    return jwt.encode(claims_for(**claims), SECRET, "HS256")


class JWKSServer:
    """GET /jwks.json on 127.0.0.1: the keys in ``keys``; counts the fetches."""

    def __init__(self) -> None:
        self.keys: list[SigningKey] = []
        self.fetches = 0
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                owner.fetches += 1
                body = json.dumps({"keys": [k.jwk for k in owner.keys]}).encode()
                self.send_response(200 if self.path == "/jwks.json" else 404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/jwks.json"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def rsa_key() -> SigningKey:
    return SigningKey("RS256")


@pytest.fixture(scope="module")
def ec_key() -> SigningKey:
    return SigningKey("ES256")


@pytest.fixture
def jwks(rsa_key: SigningKey, ec_key: SigningKey) -> Iterator[JWKSServer]:
    srv = JWKSServer()
    srv.keys = [rsa_key, ec_key]
    yield srv
    srv.close()


@pytest.fixture
def jwt_server(
    server_factory: Callable[..., ServerThread], llm: FakeOpenAI, jwks: JWKSServer
) -> ServerThread:
    return server_factory(
        llm,
        jwt_secret=SECRET,
        jwt_jwks_url=jwks.url,
        jwt_audience=AUD,
        jwt_issuer=ISS,
        auth_tokens="static-tok:carol",
    )


async def get(srv: ServerThread, path: str, token: str | None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with httpx.AsyncClient(base_url=srv.url, timeout=30) as http:
        return await http.get(path, headers=headers)


async def ws_open(
    srv: ServerThread, *, subprotocols: list[str] | None = None, **params: str
) -> WsClient:
    conn = await connect(
        srv.ws_url(**params),
        subprotocols=subprotocols,
        open_timeout=10,
        proxy=None,  # type: ignore[arg-type]
    )
    return WsClient(conn)


async def closed(ws: WsClient) -> tuple[int | None, str | None]:
    with pytest.raises(ConnectionClosed):
        while True:
            await ws.next_event(15)
    return ws.conn.close_code, ws.conn.close_reason


# --- REST ---------------------------------------------------------------------------------


async def test_every_kind_of_token_is_accepted_on_rest(
    jwt_server: ServerThread, rsa_key: SigningKey, ec_key: SigningKey
):
    for token, user in (
        (hs256(sub="alice"), "alice"),
        (rsa_key.sign(sub="bob"), "bob"),
        (ec_key.sign(sub="dave"), "dave"),
        ("static-tok", "carol"),
    ):
        r = await get(jwt_server, "/v1/usage", token)
        assert r.status_code == 200, (user, r.text)
        assert r.json()["user_id"] == user


async def test_bad_tokens_get_401_with_the_reason(jwt_server: ServerThread):
    now = int(time.time())
    no_exp = {k: v for k, v in claims_for().items() if k != "exp"}
    other_secret = "another-secret-of-32-bytes-or-more!"
    cases: list[tuple[str | None, str]] = [
        (hs256(aud="someone-else"), "audience"),
        (hs256(iss="https://evil.example"), "issuer"),
        (hs256(exp=now - 60), "expired"),
        (hs256(nbf=now + 600), "not valid yet"),
        (jwt.encode(claims_for(), other_secret, "HS256"), "Invalid"),
        (jwt.encode(no_exp, SECRET, "HS256"), "exp"),
        (hs256(sub="../../etc"), "sub"),
        (jwt.encode(claims_for(), None, "none"), "not accepted"),  # type: ignore[arg-type]
        ("a.b.c", "Invalid"),
        (None, "Missing"),
        ("nope", "Unknown"),
    ]
    for token, why in cases:
        r = await get(jwt_server, "/v1/sessions", token)
        assert r.status_code == 401 and why in r.json()["detail"], (why, r.text)
        assert r.headers["www-authenticate"] == "Bearer"


async def test_small_clock_skew_is_tolerated(jwt_server: ServerThread):
    """JWT_LEEWAY_S (10 s by default) on exp and nbf."""
    now = int(time.time())
    assert (await get(jwt_server, "/v1/usage", hs256(exp=now - 3))).status_code == 200
    assert (await get(jwt_server, "/v1/usage", hs256(nbf=now + 3))).status_code == 200


async def test_a_rotated_key_is_fetched_once_and_made_up_kids_do_not_hammer_the_issuer(
    jwt_server: ServerThread, jwks: JWKSServer, rsa_key: SigningKey
):
    assert (await get(jwt_server, "/v1/usage", rsa_key.sign())).status_code == 200
    assert jwks.fetches == 1
    assert (await get(jwt_server, "/v1/usage", rsa_key.sign(sub="zed"))).status_code == 200
    assert jwks.fetches == 1  # cached
    rotated = SigningKey("ES256")
    jwks.keys.append(rotated)
    r = await get(jwt_server, "/v1/usage", rotated.sign(sub="erin"))
    assert r.status_code == 200 and r.json()["user_id"] == "erin"
    assert jwks.fetches == 2  # the unknown kid re-read the set once
    stranger = SigningKey("ES256")  # not published
    for _ in range(3):
        r = await get(jwt_server, "/v1/usage", stranger.sign())
        assert r.status_code == 401 and "signing key" in r.json()["detail"]
    assert jwks.fetches <= 3  # at most one more re-read within JWKS_MIN_REFRESH_S


async def test_an_unreachable_key_set_is_503_not_401(
    server_factory: Callable[..., ServerThread], llm: FakeOpenAI, rsa_key: SigningKey
):
    dead = JWKSServer()
    dead.close()  # the port is closed now
    srv = server_factory(llm, jwt_jwks_url=dead.url, jwt_jwks_timeout_s=2)
    r = await get(srv, "/v1/sessions", rsa_key.sign())
    assert r.status_code == 503 and "key set is unreachable" in r.json()["detail"]
    ws = await ws_open(srv, subprotocols=[f"bearer.{rsa_key.sign()}"])
    err = await ws.wait_for("error")
    assert err["code"] == "auth_unavailable" and err["fatal"] is True
    assert await closed(ws) == (1013, "auth_unavailable")


async def test_users_are_isolated_by_sub(jwt_server: ServerThread, llm: FakeOpenAI):
    ws = await ws_open(jwt_server, token=hs256(sub="alice"))
    created = await ws.wait_for("session.created")
    assert created["session"]["user_id"] == "alice"
    sid = created["session"]["id"]
    await ws.conn.close()
    assert (await get(jwt_server, f"/v1/sessions/{sid}", hs256(sub="alice"))).status_code == 200
    assert (await get(jwt_server, f"/v1/sessions/{sid}", hs256(sub="mallory"))).status_code == 404
    r = await get(jwt_server, "/v1/sessions", hs256(sub="mallory"))
    assert r.json()["sessions"] == []
    # nor can another user resume it over the WebSocket
    ws = await ws_open(jwt_server, token=hs256(sub="mallory"), session_id=sid)
    assert (await ws.wait_for("error"))["code"] == "session_not_found"


# --- WebSocket ----------------------------------------------------------------------------


@pytest.mark.parametrize("prefix", ["bearer.", "openai-insecure-api-key."])
async def test_websocket_token_in_a_subprotocol_is_accepted_and_echoed(
    jwt_server: ServerThread, ec_key: SigningKey, prefix: str
):
    proto = prefix + ec_key.sign(sub="dave")
    ws = await ws_open(jwt_server, subprotocols=[proto])
    assert ws.conn.subprotocol == proto
    assert (await ws.wait_for("session.created"))["session"]["user_id"] == "dave"
    await ws.conn.close()


async def test_websocket_refuses_a_bad_token_with_4401(jwt_server: ServerThread):
    ws = await ws_open(jwt_server, subprotocols=[f"bearer.{hs256(aud='other')}"])
    err = await ws.wait_for("error")
    assert err["code"] == "unauthorized" and "audience" in err["message"]
    assert await closed(ws) == (4401, "unauthorized")
    ws = await ws_open(jwt_server)  # no token at all
    assert (await ws.wait_for("error"))["code"] == "unauthorized"
    assert (await closed(ws))[0] == 4401


async def test_a_token_expiring_mid_reply_ends_the_session_after_that_reply(
    server_factory: Callable[..., ServerThread], llm: FakeOpenAI
):
    srv = server_factory(llm, jwt_secret=SECRET, jwt_leeway_s=0)
    exp = time.time() + 2.0
    ws = await ws_open(srv, token=jwt.encode({"sub": "alice", "exp": exp}, SECRET, "HS256"))
    sid = (await ws.wait_for("session.created"))["session"]["id"]
    words = [f"w{i} " for i in range(12)]
    llm.queue_reply(tokens=words, ttft_ms=50, token_ms=300)  # about 3.4 s: spans the expiry
    await ws.send({"type": "input_text", "text": "tell me a long story"})
    done = await ws.wait_for("response.done", timeout=20)
    assert done["status"] == "completed" and time.time() > exp
    err = await ws.wait_for("error", timeout=10)
    assert err["code"] == "auth_expired" and err["fatal"] is True
    assert await closed(ws) == (4401, "auth_expired")
    types = [e["type"] for e in ws.events]
    assert types.index("response.done") < types.index("error")
    fresh = jwt.encode({"sub": "alice", "exp": time.time() + 600}, SECRET, "HS256")
    r = await get(srv, f"/v1/sessions/{sid}/messages", fresh)
    assert [m["content"] for m in r.json()["messages"]][-1] == "".join(words)


async def test_a_token_expiring_while_idle_ends_the_session_at_once(
    server_factory: Callable[..., ServerThread], llm: FakeOpenAI
):
    srv = server_factory(llm, jwt_secret=SECRET, jwt_leeway_s=0)
    r = await get(srv, "/v1/usage", hs256())  # has an aud, and no JWT_AUDIENCE is set here
    assert r.status_code == 401 and "set JWT_AUDIENCE" in r.json()["detail"]
    # Long enough for a loaded host to open the session first; the server must end it when
    # the token expires, with nothing sent by the client (no message, no ping) to prompt it.
    exp = time.time() + 4.0
    ws = await ws_open(srv, token=jwt.encode({"sub": "alice", "exp": exp}, SECRET, "HS256"))
    await ws.wait_for("session.created")
    err = await ws.wait_for("error", timeout=30)
    assert err["code"] == "auth_expired" and time.time() >= exp - 0.05
    assert (await closed(ws))[0] == 4401


async def test_local_mode_ignores_the_jwt_machinery(server: ServerThread):
    """No AUTH_TOKENS, no JWT_*: the token is still the user's name."""
    ws = await ws_open(server, subprotocols=["bearer.kim"])
    assert ws.conn.subprotocol == "bearer.kim"
    assert (await ws.wait_for("session.created"))["session"]["user_id"] == "kim"
    await ws.conn.close()
    await asyncio.sleep(0)
