"""Who is calling: ONE resolver for REST and every WebSocket endpoint.

Modes (docs/api.md, "Authentication"):
- local (no AUTH_TOKENS, no JWT_*): the token is the user's name; no token = "local".
- static tokens (AUTH_TOKENS="token:user,..."), and/or
- JWTs (JWT_SECRET for HS256, JWT_JWKS_URL for RS256/ES256): ``sub`` is the user id.

Where the token comes from, first found wins: ``Authorization: Bearer <token>``, a WebSocket
subprotocol ``bearer.<token>`` (or the OpenAI-Realtime style
``openai-insecure-api-key.<token>``; browsers cannot set headers on a WebSocket), then the
query parameter ``?token=``.
"""

from __future__ import annotations

import asyncio
import hmac
import re
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from http.cookies import SimpleCookie
from typing import TYPE_CHECKING
from urllib.parse import parse_qs

from fastapi import HTTPException, Request
from starlette.requests import HTTPConnection
from starlette.websockets import WebSocket

from server.config import Settings, secret
from server.hub.protocol import error_event
from server.logging import get_logger

if TYPE_CHECKING:  # PyJWT (with cryptography, ~9 MB) is imported when JWTs are configured
    import jwt

log = get_logger(__name__)

_USER_ID = re.compile(r"^[\w.@-]{1,64}$")
TOKEN_SUBPROTOCOLS = ("bearer.", "openai-insecure-api-key.")
JWKS_ALGORITHMS = ("RS256", "ES256")
JWKS_MIN_REFRESH_S = 5.0  # an unknown kid re-reads the key set at most this often


class AuthError(Exception):
    """The caller is not authenticated (HTTP 401, WebSocket close 4401)."""


class AuthUnavailable(AuthError):
    """The token cannot be checked now: the JWKS endpoint failed (HTTP 503, close 1013)."""


@dataclass(frozen=True)
class Principal:
    user_id: str
    expires_at: float | None = None  # epoch seconds (JWT exp); None = does not expire


# --- sidecar (`serve --sidecar`): one per-launch token on every request -------------------
# WebSecurityMiddleware (server/security.py) refuses any request without it, so by the time a
# route or a WebSocket endpoint authenticates, the caller is the desktop app's single user.
SIDECAR_COOKIE = "desktopmate_sidecar"
SIDECAR_USER = "local"
SIDECAR_MESSAGE = (
    "This server is a sidecar: send the token from its ready line (Authorization: Bearer, "
    "or ?token= on a WebSocket)."
)


def sidecar_credential_ok(token: str, headers: Mapping[str, str], query: str) -> bool:
    """Whether a request carries this launch's sidecar ``token``: ``Authorization: Bearer``, a
    ``bearer.<token>`` WebSocket subprotocol, ``?token=``, or the cookie the studio page gets
    when it is opened with ``?token=``."""
    expected = token.encode()
    offered: list[str] = parse_qs(query).get("token", [])
    auth = headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        offered.append(auth[7:].strip())
    for proto in headers.get("sec-websocket-protocol", "").split(","):
        for prefix in TOKEN_SUBPROTOCOLS:
            if proto.strip().startswith(prefix):
                offered.append(proto.strip()[len(prefix) :])
    cookie = SimpleCookie(headers.get("cookie", ""))
    if SIDECAR_COOKIE in cookie:
        offered.append(cookie[SIDECAR_COOKIE].value)
    return any(hmac.compare_digest(o.encode(), expected) for o in offered)


class Authenticator:
    """Built once per app (``app.state.auth``); holds the JWKS key cache."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.local = not settings.auth_configured
        self.tokens = settings.token_map or {}
        self.jwt_secret = secret(settings.jwt_secret)
        self.jwks: jwt.PyJWKClient | None = None
        if settings.jwt_jwks_url:
            import jwt

            self.jwks = jwt.PyJWKClient(
                settings.jwt_jwks_url,
                cache_keys=False,
                cache_jwk_set=True,
                lifespan=settings.jwt_jwks_cache_s,
                timeout=settings.jwt_jwks_timeout_s,
            )
        self._refresh_lock = threading.Lock()
        self._last_refresh = 0.0

    async def authenticate(self, token: str | None) -> Principal:
        if self.settings.sidecar_token is not None:
            return Principal(SIDECAR_USER)  # the sidecar token was checked on the way in
        if self.local:
            return Principal(valid_user_id(token or "local", "In local mode the token"))
        if not token:
            raise AuthError("Missing token: send Authorization: Bearer <token>.")
        for known, user in self.tokens.items():
            if hmac.compare_digest(known.encode(), token.encode()):
                return Principal(user)
        if (self.jwt_secret or self.jwks) and token.count(".") == 2:
            return await self._verify_jwt(token)
        raise AuthError("Unknown token.")

    async def _verify_jwt(self, token: str) -> Principal:
        import jwt

        s = self.settings
        try:
            alg = jwt.get_unverified_header(token).get("alg")
            if alg == "HS256" and self.jwt_secret:
                key: object = self.jwt_secret
            elif alg in JWKS_ALGORITHMS and self.jwks is not None:
                key = await asyncio.to_thread(self._jwks_key, token)
            else:
                raise AuthError(f"Tokens signed with {alg!r} are not accepted here.")
            claims = jwt.decode(
                token,
                key,  # type: ignore[arg-type]
                algorithms=[alg],
                audience=s.jwt_audience,
                issuer=s.jwt_issuer,
                leeway=s.jwt_leeway_s,
                options={"require": ["exp", "sub"]},
            )
        except jwt.ExpiredSignatureError:
            raise AuthError("The token has expired.") from None
        except jwt.ImmatureSignatureError:
            raise AuthError("The token is not valid yet (nbf).") from None
        except jwt.InvalidAudienceError:
            if not s.jwt_audience:  # PyJWT refuses any aud when none is expected
                raise AuthError(
                    "The token names an audience (aud): set JWT_AUDIENCE to accept it."
                ) from None
            raise AuthError("The token is for another audience (aud).") from None
        except jwt.InvalidIssuerError:
            raise AuthError("The token is from another issuer (iss).") from None
        except jwt.PyJWKClientConnectionError as e:
            log.warning("jwks_unavailable", error=str(e))
            raise AuthUnavailable(
                "Cannot check the token now: the key set is unreachable."
            ) from None
        except jwt.PyJWKClientError as e:
            raise AuthError(f"The token's signing key is unknown: {e}") from None
        except jwt.InvalidTokenError as e:
            raise AuthError(f"Invalid token: {e}") from None
        sub = claims["sub"]
        user = valid_user_id(sub if isinstance(sub, str) else "", "The token's sub")
        return Principal(user, float(claims["exp"]))

    def _jwks_key(self, token: str) -> object:
        """The signing key for the token's kid (blocking: runs in a thread). A kid not in the
        cached set re-reads it once (key rotation), at most every JWKS_MIN_REFRESH_S, so
        tokens with made-up kids cannot make us hammer the issuer."""
        import jwt

        assert self.jwks is not None
        kid = jwt.get_unverified_header(token).get("kid")
        keys = self.jwks.get_signing_keys()
        found = [k for k in keys if k.key_id == kid] or (
            keys if kid is None and len(keys) == 1 else []
        )
        if not found:
            with self._refresh_lock:
                if time.monotonic() - self._last_refresh >= JWKS_MIN_REFRESH_S:
                    self._last_refresh = time.monotonic()
                    keys = self.jwks.get_signing_keys(refresh=True)
                    found = [k for k in keys if k.key_id == kid]
        if not found:
            raise jwt.PyJWKClientError(f"no key with kid {kid!r}")
        return found[0].key


def valid_user_id(user: str, what: str) -> str:
    if not _USER_ID.match(user):
        raise AuthError(f"{what} must be a user name: 1-64 letters, digits, . @ _ -")
    return user


def credentials(conn: HTTPConnection) -> tuple[str | None, str | None]:
    """(token, the subprotocol that carried it) from a request or WebSocket handshake."""
    header = conn.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip() or None, None
    if conn.scope["type"] == "websocket":
        for proto in conn.scope.get("subprotocols") or []:
            for prefix in TOKEN_SUBPROTOCOLS:
                if proto.startswith(prefix) and len(proto) > len(prefix):
                    return proto[len(prefix) :], proto
    return conn.query_params.get("token") or None, None


def authenticator(conn: HTTPConnection) -> Authenticator:
    return conn.app.state.auth


async def authenticate(conn: HTTPConnection) -> Principal:
    """The caller of a request or WebSocket handshake, or AuthError."""
    token, _ = credentials(conn)
    return await authenticator(conn).authenticate(token)


async def current_principal(request: Request) -> Principal:
    """FastAPI dependency: the authenticated caller, or 401 (503 when the key set is down)."""
    try:
        return await authenticate(request)
    except AuthUnavailable as e:
        raise HTTPException(503, str(e)) from None
    except AuthError as e:
        raise HTTPException(401, str(e), headers={"WWW-Authenticate": "Bearer"}) from None


async def current_user(request: Request) -> str:
    """FastAPI dependency: the authenticated user id, or 401."""
    return (await current_principal(request)).user_id


async def accept_websocket(ws: WebSocket, subprotocols: Sequence[str] = ()) -> Principal | None:
    """Authenticate a WebSocket handshake and accept it. Every WebSocket endpoint starts with
    this. The accepted subprotocol is the first offered one in ``subprotocols`` (the
    endpoint's own names), else the one that carried the token (browsers drop a handshake
    that selects none of theirs). A refused socket gets one fatal ``unauthorized`` error
    and close 4401 (``auth_unavailable`` and 1013 when the key set is down): None."""
    offered = ws.scope.get("subprotocols") or []
    token, carrier = credentials(ws)
    chosen = next((p for p in offered if p in subprotocols), carrier)
    proto = chosen or next(iter(offered), None)
    try:
        principal = await authenticator(ws).authenticate(token)
    except AuthUnavailable as e:
        await _refuse(ws, "auth_unavailable", str(e), 1013, proto)
        return None
    except AuthError as e:
        await _refuse(ws, "unauthorized", str(e), 4401, proto)
        return None
    await ws.accept(subprotocol=chosen)
    return principal


async def _refuse(ws: WebSocket, code: str, message: str, close: int, proto: str | None) -> None:
    await ws.accept(subprotocol=proto)
    await ws.send_json(error_event(code, message, fatal=True))
    await ws.close(code=close, reason=code)
